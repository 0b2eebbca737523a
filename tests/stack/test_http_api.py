"""`warden api` on the real stack (Tansu, Anvil, the streams worker, the signer), driven by a plain
HTTP client as a developer with curl would: an API key from `warden agents api-key`, a token from
`POST /v1/auth/agent-token`, then the seeds' requests. A transfer is mined on Anvil; sign-only
bytes recover to the agent's address with eth-account; a guardrail's refusal is 403 with its code
and stage; 20 concurrent identical requests under one Idempotency-Key make one transaction; a
stranger's wrong keys never refuse the agent's right one. Solana and Bitcoin over HTTP, and
schemathesis over every family's answers, are in test_http_api_families.py."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.client import ClientSession
from eth_account import Account
from eth_account.messages import encode_defunct

from infra import contracts
from infra.stack.local import REPO, LocalStack
from runtime import metrics
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.codes import Code
from schemas.stages import Stage
from tests.http_support import BAD_BODIES, Answer, agent_token, cli_json, run_http, served_api
from tests.support import forge_rejections, make_agent, read_topic, sample
from tests.token_support import DEPLOYER

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
# The seeds' EIP-712 example: an ERC-20 Permit for USD Coin.
PERMIT = {
    "types": {
        "Permit": [
            {"name": "owner", "type": "address"},
            {"name": "spender", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "nonce", "type": "uint256"},
            {"name": "deadline", "type": "uint256"},
        ]
    },
    "primaryType": "Permit",
    "domain": {
        "name": "USD Coin",
        "version": "2",
        "chainId": 31337,
        "verifyingContract": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
    },
    "message": {"owner": DEST, "spender": DEST, "value": "1000000", "nonce": "0", "deadline": "1735689600"},
}


@pytest.fixture(scope="module")
def paused(stack: LocalStack) -> str:
    """A contract every call to which reverts (infra/contracts/Paused.sol)."""

    async def deploy() -> str:
        node = JsonRpc(stack.settings.rpc_url_for("anvil"), timeout_s=120)
        try:
            return await contracts.deploy(node, "Paused", sender=DEPLOYER)
        finally:
            await node.close()

    return asyncio.run(deploy())


@pytest.fixture(scope="module")
def agent(stack: LocalStack, paused: str) -> tuple[str, str]:
    name = f"agent-http-{os.urandom(3).hex()}"
    _, address, _ = asyncio.run(
        make_agent(
            stack.settings,
            name,
            tx_to_allowlist=(DEST, paused),
            tx_max_value_eth="1",
            tx_daily_limit_eth="5",
            approval_threshold_eth="0.5",
            message_signing_enabled=True,
        )
    )
    return name, address


@pytest.fixture(scope="module")
def served(
    stack: LocalStack, agent: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`warden api` on the stack: its URL, and the file its log goes to."""
    with served_api(stack.settings, tmp_path_factory.mktemp("api")) as found:
        yield found


@pytest.fixture(scope="module")
def api(served: tuple[str, Path]) -> str:
    return served[0]


def _receipt(rpc_url: str, tx_hash: str, timeout_s: float = 120.0) -> dict[str, Any]:
    """Anvil's receipt of ``tx_hash``, once it has one."""
    deadline = time.monotonic() + timeout_s
    while True:
        call = {"jsonrpc": "2.0", "id": 1, "method": "eth_getTransactionReceipt", "params": [tx_hash]}
        request = urllib.request.Request(rpc_url, json.dumps(call).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            receipt: dict[str, Any] | None = json.loads(response.read())["result"]
        if receipt is not None or time.monotonic() > deadline:
            assert receipt is not None, f"Anvil has no receipt of {tx_hash} after {timeout_s} s"
            return receipt
        time.sleep(0.5)


def test_the_seeds_requests_submit_sign_and_look_up_within_the_policy(
    stack: LocalStack, agent: tuple[str, str], api: str
) -> None:
    name, address = agent
    issued = cli_json(stack.settings, "agents", "api-key", "--agent", name)
    assert issued["api_key"].startswith("wak_") and issued["state"] == "active"

    async def scenario(http: ClientSession) -> dict[str, Answer]:
        auth = {"Authorization": f"Bearer {await agent_token(http, api, name, issued['api_key'])}"}
        base = f"{api}/v1/agents/{name}/transactions"
        seen: dict[str, Answer] = {}
        # The seeds' submit body, as printed, with the host, the ids and the chain changed: the
        # signing key's path is the one `warden keys provision` made for this agent.
        seeds = {
            "chain": "anvil",
            "to": DEST,
            "value": "0.01",
            "data": "0x",
            "signing_key_path": f"agents/{name}/chains/ethereum/private_key",
        }
        async with http.post(base, json=seeds, headers=auth) as r:
            seen["submit"] = (r.status, await r.json())
        async with http.post(f"{base}/sign", json={"chain": "anvil", "to": DEST, "value": "0.02"}, headers=auth) as r:
            seen["sign"] = (r.status, await r.json())
        async with http.post(base, json={"chain": "anvil", "to": DEST, "value": "1.5"}, headers=auth) as r:
            seen["over_cap"] = (r.status, await r.json())
        async with http.post(base, json={"chain": "anvil", "to": "0x" + "11" * 20, "value": "0.01"}, headers=auth) as r:
            seen["not_allowlisted"] = (r.status, await r.json())
        tx_id = seen["submit"][1]["id"]
        async with http.get(f"{base}/{tx_id}", headers=auth) as r:
            seen["get"] = (r.status, await r.json())
        async with http.get(f"{base}/{tx_id}?include_signed_tx=true", headers=auth) as r:
            seen["get_signed"] = (r.status, await r.json())
        async with http.get(base, headers=auth) as r:
            seen["list"] = (r.status, await r.json())
        async with http.get(f"{api}/v1/chains") as r:
            seen["chains"] = (r.status, await r.json())
        return seen

    seen = run_http(scenario)
    status, tx = seen["submit"]
    assert status == 201, tx
    assert tx["status"] in ("broadcast", "mined") and tx["chain"] == "anvil" and tx["tx_hash"].startswith("0x")
    assert tx["from"] == address and Account.recover_transaction(tx["signed_tx"]) == address
    receipt = _receipt(stack.settings.rpc_url, tx["tx_hash"])
    assert receipt["status"] == "0x1" and receipt["to"].lower() == DEST.lower()

    status, signed = seen["sign"]
    assert status == 201 and signed["status"] == "sign_only", signed
    assert signed["value_wei"] == str(2 * 10**16) and signed["chain_id"] == 31337
    assert Account.recover_transaction(signed["signed_tx"]) == address == signed["from"]

    for case in ("over_cap", "not_allowlisted"):
        status, refused = seen[case]
        assert status == 403, refused
        assert refused["code"] and refused["stage"] and refused["detail"] and refused["status"] == "refused"
    assert seen["over_cap"][1]["stage"] == Stage.VALUE_CAP

    status, got = seen["get"]
    assert status == 200 and got["id"] == tx["id"] and "signed_tx" not in got
    assert seen["get_signed"][1]["signed_tx"] == tx["signed_tx"]
    listed = {t["id"]: t for t in seen["list"][1]["transactions"]}
    assert {tx["id"], signed["id"], seen["over_cap"][1]["id"]} <= set(listed)
    assert all("signed_tx" not in t for t in listed.values())
    assert "anvil" in {c["name"] for c in seen["chains"][1]["chains"]}


def test_twenty_concurrent_requests_under_one_idempotency_key_make_one_transaction(
    stack: LocalStack, agent: tuple[str, str], api: str
) -> None:
    name, _ = agent
    issued = cli_json(stack.settings, "agents", "api-key", "--agent", name)
    body = {"chain": "anvil", "to": DEST, "value": "0.003"}

    async def scenario(http: ClientSession) -> tuple[list[Answer], Answer, Answer, list[Any]]:
        auth = {"Authorization": f"Bearer {await agent_token(http, api, name, issued['api_key'])}"}
        base = f"{api}/v1/agents/{name}/transactions"
        headers = {**auth, "Idempotency-Key": os.urandom(8).hex()}

        async def one() -> Answer:
            async with http.post(f"{base}/sign", json=body, headers=headers) as r:
                return r.status, await r.json()

        first = await asyncio.gather(*(one() for _ in range(20)))
        again = await one()
        async with http.post(f"{base}/sign", json={**body, "value": "0.004"}, headers=headers) as r:
            other_body = (r.status, await r.json())
        async with http.get(base, headers=auth) as r:
            listed: list[Any] = (await r.json())["transactions"]
        return first, again, other_body, listed

    first, again, other_body, listed = run_http(scenario)
    statuses = sorted(status for status, _ in first)
    assert statuses.count(201) == 1 and set(statuses) <= {201, 200, 409}, statuses
    created = next(doc for status, doc in first if status == 201)
    assert again == (200, created)
    assert all(doc["id"] == created["id"] for status, doc in first if status == 200)
    assert other_body[0] == 422 and other_body[1]["code"] == Code.IDEMPOTENCY_KEY_REUSED
    assert [t["id"] for t in listed if t.get("value_wei") == str(3 * 10**15)] == [created["id"]]


def test_a_revoked_key_stops_its_token_at_once(stack: LocalStack, agent: tuple[str, str], api: str) -> None:
    name, _ = agent
    issued = cli_json(stack.settings, "agents", "api-key", "--agent", name)

    async def scenario(http: ClientSession) -> tuple[int, dict[str, Any], Answer]:
        auth = {"Authorization": f"Bearer {await agent_token(http, api, name, issued['api_key'])}"}
        async with http.get(f"{api}/v1/agents/{name}/transactions", headers=auth) as r:
            before = r.status
        revoked = cli_json(stack.settings, "agents", "api-key", "--agent", name, "--revoke", issued["key_id"])
        async with http.get(f"{api}/v1/agents/{name}/transactions", headers=auth) as r:
            after = (r.status, await r.json())
        return before, revoked, after

    before, revoked, after = run_http(scenario)
    assert before == 200 and revoked["state"] == "revoked"
    assert after[0] == 401 and "revoked" in after[1]["detail"]


def test_a_forged_refusal_is_not_reported_a_revert_is_422_and_a_parked_intent_is_202(
    stack: LocalStack, agent: tuple[str, str], api: str, paused: str
) -> None:
    name, address = agent
    issued = cli_json(stack.settings, "agents", "api-key", "--agent", name)

    async def scenario(http: ClientSession) -> dict[str, Any]:
        auth = {"Authorization": f"Bearer {await agent_token(http, api, name, issued['api_key'])}"}
        base = f"{api}/v1/agents/{name}/transactions"
        seen: dict[str, Any] = {}
        # A topic writer answers the submit at once with a refusal signed by a key no one pinned:
        # the API must report the real outcome, which comes later through the worker and the signer.
        # The signer is held (SIGSTOP) until the forgery is on the topic, so the lie always comes first.
        start = await end_offsets(stack.settings, (topics.INTENTS_SUBMITTED,))
        forged: list[str] = []
        reading = asyncio.Event()
        forger = asyncio.create_task(forge_rejections(stack.settings, name, start, forged, reading))
        signer = stack.processes["signer"].pid
        try:
            await asyncio.wait_for(reading.wait(), 60)
            os.kill(signer, signal.SIGSTOP)
            try:
                submit = asyncio.create_task(
                    http.post(base, json={"chain": "anvil", "to": DEST, "value": "0.01"}, headers=auth)
                )
                deadline = time.monotonic() + 60
                while not forged and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1)  # the API's reader has read the lie before the truth exists
            finally:
                os.kill(signer, signal.SIGCONT)
            async with await submit as r:
                seen["real"] = (r.status, await r.json())
        finally:
            forger.cancel()
        seen["forged_for"] = forged
        reverting = {"chain": "anvil", "to": paused, "value": "0.01", "simulate_first": True}
        async with http.post(base, json=reverting, headers=auth) as r:
            seen["reverted"] = (r.status, await r.json())
        async with http.post(base, json={"chain": "anvil", "to": DEST, "value": "0.6"}, headers=auth) as r:
            seen["parked"] = (r.status, await r.json())
        return seen

    seen = run_http(scenario)
    status, real = seen["real"]
    assert real["id"] in seen["forged_for"]
    assert status == 201 and real["status"] in ("broadcast", "mined") and real["forged_outcomes_ignored"] >= 1, real
    status, reverted = seen["reverted"]
    assert status == 422 and reverted["status"] == "simulation_failed", reverted
    assert reverted["code"] == Code.SIMULATION_REVERTED and "transfers paused" in reverted["detail"]
    status, parked = seen["parked"]
    assert status == 202 and parked["status"] == "awaiting_approval" and parked["awaiting_approval"]["reason"], parked


def test_simulate_sign_and_signing_keys_answer_as_the_seeds_print_them(
    stack: LocalStack, agent: tuple[str, str], api: str, paused: str
) -> None:
    name, address = agent
    issued = cli_json(stack.settings, "agents", "api-key", "--agent", name)

    async def scenario(http: ClientSession) -> dict[str, Answer]:
        auth = {"Authorization": f"Bearer {await agent_token(http, api, name, issued['api_key'])}"}
        base = f"{api}/v1/agents/{name}"
        seen: dict[str, Answer] = {}
        calls = {
            "simulate": (
                "POST",
                "/transactions/simulate",
                {"chain": "anvil", "to": DEST, "value": "0.5", "data": "0x"},
            ),
            "bundle": (
                "POST",
                "/transactions/simulate-bundle",
                {
                    "transactions": [
                        {"chain": "anvil", "to": DEST, "value": "0.1"},
                        {"chain": "anvil", "to": paused, "value": "0"},
                    ]
                },
            ),
            "personal": (
                "POST",
                "/sign",
                {"intent_type": "personal_sign", "chain": "anvil", "message": "Hello from my agent!"},
            ),
            "typed": ("POST", "/sign", {"intent_type": "typed_data", "chain": "anvil", "typed_data": PERMIT}),
            "tx": (
                "POST",
                "/sign",
                {
                    "intent_type": "transaction",
                    "chain": "anvil",
                    "tx_type": 0,
                    "to": DEST,
                    "value": "0",
                    "gas_price": "2000000000",
                    "gas_limit": 21000,
                },
            ),
            "keys": ("GET", "/signing-keys", None),
            "provision": ("POST", "/signing-keys", {"chain": "ethereum"}),
            "rotate": ("POST", "/signing-keys/anvil/rotate", None),
            "deactivate": ("DELETE", "/signing-keys/anvil", None),
        }
        for case, (method, path, body) in calls.items():
            async with http.request(method, base + path, json=body, headers=auth) as r:
                seen[case] = (r.status, await r.json())
        return seen

    seen = run_http(scenario)
    status, sim = seen["simulate"]
    assert status == 200 and sim["simulation_id"] and sim["status"] == "success" and sim["gas_used"] == 21000, sim
    changes = {(row["address"].lower(), row["token"]): row["change"] for row in sim["balance_changes"]}
    assert changes[(DEST.lower(), "ETH")] in ("0.5", "+0.5") and sim["decision"] == "allowed"
    status, bundle = seen["bundle"]
    assert status == 200 and [t["status"] for t in bundle["transactions"]] == ["success", "reverted"], bundle
    assert bundle["status"] == "reverted" and "transfers paused" in bundle["transactions"][1]["revert_reason"]

    status, personal = seen["personal"]
    assert status == 201 and personal["from"] == address, personal
    signer = Account.recover_message(encode_defunct(text="Hello from my agent!"), signature=personal["signature"])
    assert signer == address
    status, typed = seen["typed"]
    # A Permit is a spend authorization: refused unless its domain is allowlisted (deny by default).
    assert status == 403 and typed["code"].startswith("EIP712_") and typed["stage"], typed
    status, tx = seen["tx"]
    assert status == 201 and tx["status"] == "sign_only" and tx["tx_type"] == 0, tx
    assert Account.recover_transaction(tx["signed_tx"]) == address

    status, keys = seen["keys"]
    assert status == 200 and [k["address"] for k in keys["keys"]] == [address]
    for case in ("provision", "rotate", "deactivate"):
        status, refused = seen[case]
        assert status == 403 and refused["error"] == "admins_only" and "warden keys" in refused["detail"], refused


def test_signing_keys_are_the_key_stores_and_a_broadcast_the_node_refused_is_422(stack: LocalStack, api: str) -> None:
    """In the order the README gives (the agent's policy, then its key): the key store's address
    from its provision, and after a rotation the new one in use, the old still listed, each
    answered from what the API's reader keeps of the key store, which a request does not read
    again; the agent has no funds on Anvil, so the node refuses its transfer, which is an error,
    not a 201."""
    name = f"agent-http-keys-{os.urandom(3).hex()}"
    cli_json(
        stack.settings,
        "agents",
        "create",
        "--agent",
        name,
        "--chains",
        "anvil",
        "--allowlist",
        DEST,
        "--max-value",
        "1",
    )
    first = cli_json(stack.settings, "keys", "provision", "--agent", name, "--chain", "ethereum")["address"]
    issued = cli_json(stack.settings, "agents", "api-key", "--agent", name)

    async def keys(http: ClientSession, auth: dict[str, str]) -> list[tuple[str, bool]]:
        async with http.get(f"{api}/v1/agents/{name}/signing-keys", headers=auth) as r:
            assert r.status == 200, await r.text()
            return [(k["address"], k["in_use"]) for k in (await r.json())["keys"] if k["key_chain"] == "ethereum"]

    async def scenario(http: ClientSession) -> dict[str, Any]:
        auth = {"Authorization": f"Bearer {await agent_token(http, api, name, issued['api_key'])}"}
        seen: dict[str, Any] = {"provisioned": await keys(http, auth)}
        # Gas and fees given: the transfer is judged and signed as asked, and only the node can refuse it.
        transfer = {"chain": "anvil", "to": DEST, "value": "0.01", "gas_limit": 21000}
        transfer |= {"max_fee_per_gas": str(10 * 10**9), "max_priority_fee_per_gas": str(10**9)}
        async with http.post(f"{api}/v1/agents/{name}/transactions", json=transfer, headers=auth) as r:
            seen["unfunded"] = (r.status, await r.json())
        seen["rotated to"] = cli_json(stack.settings, "keys", "rotate", "--agent", name, "--chain", "ethereum")[
            "address"
        ]
        seen["rotated"] = await keys(http, auth)
        # Served from what the API's reader keeps: asking again reads no record of the topics again.
        seen["records read"] = sample(metrics_url, "warden_api_key_store_records_total")
        seen["asked again"] = [await keys(http, auth) for _ in range(5)]
        seen["records read after"] = sample(metrics_url, "warden_api_key_store_records_total")
        return seen

    metrics_url = metrics.metrics_file(stack.settings, "api").read_text().strip()
    seen = run_http(scenario)
    assert seen["provisioned"] == [(first, True)]
    status, refused = seen["unfunded"]
    assert (status, refused["code"], refused["status"]) == (422, Code.BROADCAST_REFUSED, "failed"), refused
    assert "insufficient funds" in refused["detail"].lower() and refused["id"], refused
    assert seen["rotated"] == [(seen["rotated to"], True), (first, False)]
    assert seen["asked again"] == [seen["rotated"]] * 5
    assert seen["records read"] > 0 and seen["records read after"] == seen["records read"], seen


def _raw(url: str, data: bytes, close_write: bool = False) -> bytes:
    """What the server at ``url`` answers ``data``, sent as it is over a socket, read until it closes."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_the_live_servers_parser_errors_are_json_and_a_cut_body_is_no_pipeline_failure(
    served: tuple[str, Path],
) -> None:
    """`warden api` itself (not only the app the unit tests serve) answers what aiohttp's parser
    refuses as the API's JSON errors, and a client that drops its body is not logged as a
    pipeline that did not answer."""
    url, log = served
    header = b"GET /v1/chains HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n"
    framing = (
        b"POST /v1/auth/agent-token HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    answers = {}
    for case, data in {"header": header, "framing": framing}.items():
        head, _, body = _raw(url, data).partition(b"\r\n\r\n")
        answers[case] = (int(head.split()[1]), b"application/json" in head, json.loads(body)["code"])
    cut = b'POST /v1/auth/agent-token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"agent_id": '
    assert _raw(url, cut, close_write=True) == b""  # nothing can answer a client that left
    assert answers == {"header": (431, True, Code.HEADERS_TOO_LARGE), "framing": (400, True, Code.HTTP_MALFORMED)}
    time.sleep(1)  # the server has logged what it logs of the cut body by now
    assert "did not answer" not in log.read_text()


TYPESCRIPT = REPO / "sdk" / "typescript"


def test_the_typescript_client_submits_signs_and_looks_up_on_the_stack(
    stack: LocalStack, api: str, tmp_path: Path
) -> None:
    """The TypeScript client's own tests (Node's test runner, viem as the oracle) against this
    stack, after checking that its types were generated from the document the server serves.
    An agent of its own: the sign-only transactions of the tests above hold nonces nobody
    broadcast, and a transfer of the same agent would wait behind them."""
    name = f"agent-http-ts-{os.urandom(3).hex()}"
    _, address, _ = asyncio.run(
        make_agent(
            stack.settings,
            name,
            tx_to_allowlist=(DEST,),
            tx_max_value_eth="1",
            tx_daily_limit_eth="5",
            message_signing_enabled=True,
        )
    )
    regenerated = tmp_path / "schema.ts"
    (tmp_path / "openapi.json").write_text(urllib.request.urlopen(f"{api}/v1/openapi.json", timeout=30).read().decode())
    npx = ["npx", "--no-install", "--prefix", str(TYPESCRIPT)]
    done = subprocess.run(
        [*npx, "openapi-typescript", str(tmp_path / "openapi.json"), "-o", str(regenerated)],
        cwd=TYPESCRIPT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert regenerated.read_text() == (TYPESCRIPT / "src" / "schema.ts").read_text(), (
        "sdk/typescript/src/schema.ts is not what the served document generates: run "
        "`warden api --openapi > sdk/typescript/openapi.json && npm run schema --prefix sdk/typescript`"
    )
    issued = cli_json(stack.settings, "agents", "api-key", "--agent", name)
    env = {
        **os.environ,
        "WARDEN_TEST_API_URL": api,
        "WARDEN_TEST_API_KEY": issued["api_key"],
        "WARDEN_TEST_AGENT": name,
        "WARDEN_TEST_AGENT_ADDRESS": address,
        "WARDEN_TEST_DEST": DEST,
        "WARDEN_TEST_RPC_URL": stack.settings.rpc_url_for("anvil"),
    }
    done = subprocess.run(
        ["node", "--test", "test/client.test.mjs"], cwd=TYPESCRIPT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"# pass 5\b", done.stdout) and re.search(r"# fail 0\b", done.stdout), done.stdout[-3000:]


def test_bad_input_and_bad_tokens_on_the_live_api_are_4xx_naming_what_was_wrong(
    stack: LocalStack, agent: tuple[str, str], api: str
) -> None:
    """The input classes tests/unit checks in process, against the running server: each a 4xx
    that names the field, and no intent published for any of them."""
    name, _ = agent
    issued = cli_json(stack.settings, "agents", "api-key", "--agent", name)
    other = cli_json(stack.settings, "agents", "api-key", "--agent", f"{name}-other")

    async def scenario(http: ClientSession) -> tuple[dict[str, Answer], list[bytes]]:
        token = await agent_token(http, api, name, issued["api_key"])
        start = await end_offsets(stack.settings, (topics.INTENTS_SUBMITTED,))
        answers: dict[str, Answer] = {}
        for case, (doc, _) in BAD_BODIES.items():
            async with http.post(
                f"{api}/v1/agents/{name}/transactions", json=doc, headers={"Authorization": f"Bearer {token}"}
            ) as r:
                answers[case] = (r.status, await r.json())
        for case, headers in {
            "no token": {},
            "forged token": {"Authorization": "Bearer " + token[:-4] + "AAAA"},
            "a token with a byte added": {"Authorization": f"Bearer {token}x"},
        }.items():
            async with http.get(f"{api}/v1/agents/{name}/transactions", headers=headers) as r:
                answers[case] = (r.status, await r.json())
        async with http.post(f"{api}/v1/auth/agent-token", json={"agent_id": name, "api_key": other["api_key"]}) as r:
            answers["a key of another agent"] = (r.status, await r.json())
        published = await read_topic(stack.settings, topics.INTENTS_SUBMITTED, start=start)
        return answers, published

    answers, published = run_http(scenario)
    for case, (_, field) in BAD_BODIES.items():
        status, doc = answers[case]
        assert status == 400 and field in [f["field"] for f in doc["fields"]], (case, doc)
    for case in ("no token", "forged token", "a token with a byte added", "a key of another agent"):
        assert answers[case][0] == 401 and answers[case][1]["detail"], (case, answers[case])
    assert not [v for v in published if name.encode() in v]


def test_a_stranger_failing_for_the_agent_never_refuses_its_right_key(
    stack: LocalStack, agent: tuple[str, str], api: str
) -> None:
    """While someone who knows only the agent's id sends wrong keys for it as fast as the server
    answers, from the same address, the agent trades its right key 20 times: each is a token."""
    name, _ = agent
    issued = cli_json(stack.settings, "agents", "api-key", "--agent", name)

    async def scenario(http: ClientSession) -> tuple[list[int], list[int]]:
        async def ask(key: str) -> int:
            async with http.post(f"{api}/v1/auth/agent-token", json={"agent_id": name, "api_key": key}) as r:
                return r.status

        async def stranger() -> list[int]:
            return [await ask(f"wak_{os.urandom(6).hex()}.not-the-key") for _ in range(60)]

        async def rightful() -> list[int]:
            return [await ask(issued["api_key"]) for _ in range(20)]

        wrong, right = await asyncio.gather(stranger(), rightful())
        return wrong, right

    wrong, right = run_http(scenario)
    assert right == [200] * 20
    assert set(wrong) == {401, 429}, wrong  # the stranger is slowed: the address's failures are spent
