"""`warden api` on the real stack for every chain family (Anvil, the local Solana node surfpool, the
local Bitcoin node btcd, the streams worker, the signer), driven by a plain HTTP client. One agent
with a key on each pays on each through `POST .../transactions/sign` (`chain`, `to`, `value`);
`GET .../transactions` lists every payment and `GET .../transactions/{id}` finds it by its id and by
its hash on chain, in its family's shape (`family`), saying what the POST said. A network the
policy does not allow is refused as the policy says before any node is asked, and one it allows
with no node to ask is 503 naming what to set. A Solana transaction over HTTP is signed, sent or
refused by its rule. schemathesis checks every answer, of every family, against the OpenAPI
document."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.client import ClientSession
from embit import ec, script
from embit.networks import NETWORKS
from mcp.client.session import ClientSession as McpSession
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from infra.cli.fund import fund
from infra.stack.local import REPO, LocalStack
from infra.stack.provision import provision_agent, provision_bitcoin_agent, provision_solana_agent
from ledger.keys import local_public_key
from ledger.note import ED25519, NoteKey
from ledger.receipt import Policy, Receipt, check
from runtime import solana
from runtime.clock import utcnow
from runtime.rpc import JsonRpc
from schemas.codes import Code
from schemas.policy import BitcoinPolicy, SolanaPolicy
from schemas.stages import Stage
from sdk import solana as build
from svm import messages
from tests.http_support import Answer, agent_token, cli_json, run_http, served_api
from tests.support import warden_mcp

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
STRANGER = "0x000000000000000000000000000000000000bEEF"
# The networks the agent pays on: each with a node the stack runs.
NETWORKS_WITH_NODES = ("anvil", "solana-local", "bitcoin-regtest")


@dataclass(frozen=True)
class Families:
    """An agent with a key on each family, its policy allowing `NETWORKS_WITH_NODES`, its API key."""

    name: str
    api_key: str
    alice: str  # a Solana wallet its policy allows paying
    bob: str  # a regtest address its policy allows paying


def _stranger_on_regtest() -> str:
    """A fresh regtest P2WPKH address nobody here holds the key of."""
    return str(script.p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["regtest"]))


@pytest.fixture(scope="module")
def families(stack: LocalStack) -> Families:
    """Its Solana and Bitcoin keys first (each with a policy of one family), then its EVM key and
    the policy in force over all three; 0.05 BTC from the regtest node to pay from."""
    settings = stack.settings
    name = f"agent-http-all-{os.urandom(3).hex()}"
    alice, bob = str(Keypair().pubkey()), _stranger_on_regtest()

    async def provision() -> None:
        on_solana = await provision_solana_agent(settings, name, fund_lamports=10**9)
        on_bitcoin = await provision_bitcoin_agent(settings, name)
        assert on_bitcoin.policy.bitcoin is not None
        await provision_agent(
            settings,
            name,
            tx_allowed_chains=NETWORKS_WITH_NODES,
            tx_to_allowlist=(DEST,),
            tx_max_value_eth="1",
            solana=SolanaPolicy(address=on_solana.address, allowlist=(alice,)),
            bitcoin=BitcoinPolicy(public_key=on_bitcoin.policy.bitcoin.public_key, allowlist=(bob,)),
        )
        await fund(settings, "bitcoin-regtest", on_bitcoin.address, 5_000_000)

    asyncio.run(provision())
    return Families(name, cli_json(settings, "agents", "api-key", "--agent", name)["api_key"], alice, bob)


@pytest.fixture(scope="module")
def api(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_api(stack.settings, tmp_path_factory.mktemp("api")) as (url, _):
        yield url


# What each family's answer names the transaction by on chain, beside its id.
HASHES = {"evm": ("tx_hash",), "solana": ("signature", "tx_signature"), "bitcoin": ("txid",)}
# The shapes a lookup answers in, one a family.
SHAPES = ("Transaction", "SolanaTransactionResult", "BitcoinTransactionResult")
# What a lookup must say as the POST said it: where it stands, what it may spend, and what it is.
SAID = ("id", "family", "chain", "status", "final", "spend", "value_wei", "max_spend_wei", "fee_sats", "from")


@pytest.fixture(scope="module")
def payments(families: Families, api: str) -> dict[str, Answer]:
    """A payment signed (sign only) through `POST .../transactions/sign` on each family: the API's
    answer to each, by family."""
    bodies = {
        "evm": {"chain": "anvil", "to": DEST, "value": "0.001"},
        "solana": {"chain": "solana-local", "to": families.alice, "value": "0.01"},
        "bitcoin": {"chain": "bitcoin-regtest", "to": families.bob, "value": "0.001"},
    }

    async def scenario(http: ClientSession) -> dict[str, Answer]:
        auth = {"Authorization": f"Bearer {await agent_token(http, api, families.name, families.api_key)}"}
        seen: dict[str, Answer] = {}
        for family, body in bodies.items():
            async with http.post(f"{api}/v1/agents/{families.name}/transactions/sign", json=body, headers=auth) as r:
                seen[family] = (r.status, await r.json())
        return seen

    seen = run_http(scenario)
    assert [(seen[f][0], seen[f][1].get("status")) for f in bodies] == [(201, "sign_only")] * 3, seen
    assert {f: seen[f][1].get("family") for f in bodies} == {f: f for f in bodies}, seen
    return seen


def _said(posted: dict[str, Any]) -> dict[str, Any]:
    """What a lookup must say of a payment as its POST said it (``SAID``, those the POST named)."""
    return {name: posted[name] for name in SAID if name in posted}


def test_every_familys_payment_is_listed_and_found_by_its_id_and_its_hash(
    families: Families, api: str, payments: dict[str, Answer]
) -> None:
    async def scenario(http: ClientSession) -> dict[str, Any]:
        auth = {"Authorization": f"Bearer {await agent_token(http, api, families.name, families.api_key)}"}
        base = f"{api}/v1/agents/{families.name}/transactions"
        seen: dict[str, Any] = {}
        for query in ("", "?include_signed_tx=true"):
            async with http.get(base + query, headers=auth) as r:
                seen[f"list{query}"] = (r.status, await r.json())
        for family, (_, posted) in payments.items():
            for name in (n for n in ("id", *HASHES[family]) if n in posted):  # the assertions below say which is not
                async with http.get(f"{base}/{posted[name]}", headers=auth) as r:
                    seen[f"{family} by {name}"] = (r.status, await r.json())
        return seen

    seen = run_http(scenario)
    listed = {row["id"]: row for row in seen["list"][1]["transactions"]}
    assert {f: payments[f][1]["id"] in listed for f in payments} == dict.fromkeys(payments, True), listed
    with_bytes = {row["id"]: row for row in seen["list?include_signed_tx=true"][1]["transactions"]}
    for family, (_, posted) in payments.items():
        said = _said(posted)
        row = listed[posted["id"]]
        assert {name: row.get(name) for name in said} == said and "signed_tx" not in row, (family, row)
        assert with_bytes[posted["id"]]["signed_tx"] == posted["signed_tx"]
        for name in ("id", *HASHES[family]):
            status, found = seen[f"{family} by {name}"]
            assert status == 200 and {n: found.get(n) for n in said} == said, (family, name, found)
            assert "signed_tx" not in found
    assert payments["solana"][1]["spend"]["SOL"] and int(payments["bitcoin"][1]["spend"]["BTC"]) > 10**5


def test_an_mcp_client_lists_and_finds_every_familys_payment_and_a_refusal(
    stack: LocalStack, families: Families, payments: dict[str, Answer], tmp_path: Path
) -> None:
    """`warden mcp` for the same agent, in a real MCP session (whose client checks every answer
    against the tool's output schema): list_transactions lists the EVM, Solana and Bitcoin payments
    the API signed, each in its family's shape (``family``) saying what the POST said, and filters
    them by status and by time across families (a refusal among them, as a refusal naming no
    family); get_transaction finds each by its hash on chain (an EVM hash, a Solana signature, a
    Bitcoin txid) without its bytes, and the Bitcoin one by its intent id with its receipt."""
    settings = stack.settings

    async def calls() -> dict[str, Any]:
        got: dict[str, Any] = {}
        with open(tmp_path / "mcp.log", "w") as errlog:
            server = warden_mcp(settings, families.name)
            async with stdio_client(server, errlog=errlog) as (read, write), McpSession(read, write) as session:
                await session.initialize()
                got["tools"] = {tool.name: tool for tool in (await session.list_tools()).tools}

                async def call(name: str, **arguments: Any) -> CallToolResult:
                    return await session.call_tool(name, arguments, read_timeout_seconds=150)

                between = utcnow().isoformat()  # after every payment was signed, before the refusal
                await asyncio.sleep(0.01)
                got["refused"] = await call("submit_transaction", chain="anvil", to=STRANGER, value="0.001")
                got["before"] = await call("list_transactions", until=between)
                got["after"] = await call("list_transactions", since=between)
                got["sign_only"] = await call("list_transactions", status="sign_only", include_signed_tx=True)
                for family, (_, posted) in payments.items():
                    got[family] = await call("get_transaction", transaction_id=posted[HASHES[family][0]])
                # By its id, with its receipt: once the ledger holds its outcome under a signed checkpoint.
                for _ in range(60):
                    got["receipt"] = await call(
                        "get_transaction", transaction_id=payments["bitcoin"][1]["id"], include_receipt=True
                    )
                    if (got["receipt"].structured_content or {}).get("receipt"):
                        break
                    await asyncio.sleep(1)
        return got

    got = asyncio.run(calls())
    data: dict[str, dict[str, Any]] = {n: r.structured_content for n, r in got.items() if isinstance(r, CallToolResult)}
    # Listed: each family's payment as the POST said it, until the refusal; then the refusal alone.
    listed = {t["intent_id"]: t for t in data["before"]["transactions"]}
    assert set(listed) == {posted["id"] for _, posted in payments.values()}, listed
    for _, posted in payments.values():
        row, said = listed[posted["id"]], _said(posted)
        assert {n: {**row, "id": row["intent_id"]}.get(n) for n in said} == said and "signed_tx" not in row, row
    (refused,) = data["after"]["transactions"]
    assert (refused["intent_id"], refused["status"], refused["family"]) == (
        data["refused"]["intent_id"],
        "refused",
        None,
    ), refused
    assert (refused["refusal"]["stage"], refused["refusal"]["code"]) == (
        Stage.ALLOWLIST,
        Code.RECIPIENT_NOT_ALLOWLISTED,
    )
    signed = {t["intent_id"]: (t["family"], t["signed_tx"]) for t in data["sign_only"]["transactions"]}
    assert signed == {p["id"]: (f, p["signed_tx"]) for f, (_, p) in payments.items()}, signed
    # Found by its hash on chain (an EVM hash, a Solana signature, a Bitcoin txid), its bytes left out.
    unfound = {name: got[name].content[0].text for name in (*payments, "receipt") if got[name].is_error}
    assert not unfound, unfound
    for family, (_, posted) in payments.items():
        found, said = data[family], _said(posted)
        assert {n: {**found, "id": found["intent_id"]}.get(n) for n in said} == said, (family, found)
        assert "signed_tx" not in found, found
    # And by its id, with its receipt, which proves its outcome with the log's key alone.
    by_id = data["receipt"]
    assert {**by_id, "receipt": None} == data["bitcoin"], by_id
    assert by_id["receipt"], by_id["receipt_unavailable"]
    receipt = Receipt.parse(by_id["receipt"])
    check(receipt, Policy(NoteKey(settings.ledger.log_name, ED25519, local_public_key(settings.home))))
    assert receipt.event["intent_id"] == payments["bitcoin"][1]["id"], receipt.event
    # What a client reads each shape by: the output schema names each family's.
    for tool in ("get_transaction", "list_transactions"):
        shapes = got["tools"][tool].output_schema["$defs"]
        named = {name: shapes[name]["properties"]["family"] for name in SHAPES}
        assert [named[name].get("enum", [named[name].get("const")]) for name in SHAPES] == [
            ["evm", None],
            ["solana"],
            ["bitcoin"],
        ], (tool, named)


def test_a_network_the_policy_refuses_is_refused_before_its_node_and_one_with_no_node_is_503(
    stack: LocalStack, families: Families, api: str
) -> None:
    """Mainnet and devnet have no node here (no WARDEN_RPC_URL_SOLANA, _SOLANA_DEVNET, _BITCOIN):
    for an agent whose policy does not allow them a transfer there is refused as the worker would
    refuse it, with nothing asked of any node; for one whose policy allows them it is 503 naming
    the variable to set. Never a 500."""
    settings = stack.settings
    lonely = f"agent-http-norpc-{os.urandom(3).hex()}"
    mainnet_bob = str(script.p2wpkh(ec.PrivateKey(os.urandom(32)).get_public_key()).address(NETWORKS["main"]))
    transfers = {
        "solana": {"chain": "solana", "to": families.alice, "value": "0.01"},
        "solana-devnet": {"chain": "solana-devnet", "to": families.alice, "value": "0.01"},
        "bitcoin": {"chain": "bitcoin", "to": mainnet_bob, "value": "0.001"},
    }

    async def post(http: ClientSession, agent: str, key: str, bodies: dict[str, Any]) -> dict[str, Answer]:
        auth = {"Authorization": f"Bearer {await agent_token(http, api, agent, key)}"}
        seen = {}
        for what, body in bodies.items():
            async with http.post(f"{api}/v1/agents/{agent}/transactions", json=body, headers=auth) as r:
                seen[what] = (r.status, await r.json())
        return seen

    async def scenario(http: ClientSession) -> dict[str, Answer]:
        seen = await post(http, families.name, families.api_key, transfers)
        # An agent whose policy allows Solana's devnet alone, then Bitcoin's mainnet alone.
        await provision_solana_agent(settings, lonely, fund_lamports=0, chain="solana-devnet")
        key = (await asyncio.to_thread(cli_json, settings, "agents", "api-key", "--agent", lonely))["api_key"]
        first = await post(http, lonely, key, {"solana-devnet": transfers["solana-devnet"]})
        await provision_bitcoin_agent(settings, lonely, chain="bitcoin")
        then = await post(http, lonely, key, {"bitcoin": transfers["bitcoin"], "devnet": transfers["solana-devnet"]})
        return {
            **seen,
            "allowed solana-devnet": first["solana-devnet"],
            "allowed bitcoin": then["bitcoin"],
            "solana-devnet no longer allowed": then["devnet"],
        }

    seen = run_http(scenario)
    for chain in (*transfers, "solana-devnet no longer allowed"):
        status, refused = seen[chain]
        assert (status, refused.get("code"), refused.get("stage")) == (403, Code.CHAIN_NOT_ALLOWED, Stage.CHAIN), (
            refused
        )
        assert "id" not in refused and "nothing was written or signed" in refused["detail"], refused
    for chain, variable in (("solana-devnet", "WARDEN_RPC_URL_SOLANA_DEVNET"), ("bitcoin", "WARDEN_RPC_URL_BITCOIN")):
        status, unasked = seen[f"allowed {chain}"]
        assert (status, unasked.get("code")) == (503, Code.NO_RPC) and variable in unasked["detail"], unasked


def test_schemathesis_finds_no_server_error_and_every_answer_of_every_family_matches_the_document(
    families: Families, api: str, tmp_path: Path
) -> None:
    """schemathesis (an independent test generator) reads /v1/openapi.json and sends what it
    generates from it, valid and not, with a valid token, for the agent of every family (run
    after the test above, its list holds an EVM, a Solana and a Bitcoin payment, and transfers
    on every network are generated): no answer is a 5xx, and every status, content type and
    body is one the document declares."""
    name = families.name
    token = run_http(lambda http: agent_token(http, api, name, families.api_key))
    checks = (
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
        "positive_data_acceptance"
    )
    # The path's agent is the token's (a random one is 403 before anything else is looked at).
    # What the document allows, the server takes: no 400 (nor 408, 413, 414, 431) for a request it
    # allows. Refusals of what the document cannot state are the agent's policy (403), a transaction
    # or key it does not have (404, 401), the intent's own rules (422: a priority fee over the maximum
    # fee, bytes that do not parse), the idempotency answers (409, 422) and the rate limits (429).
    (tmp_path / "schemathesis.toml").write_text(
        f'[parameters]\n"path.agent_id" = "{name}"\n\n[checks.positive_data_acceptance]\n'
        'expected-statuses = ["200", "201", "202", "401", "403", "404", "409", "422", "429"]\n'
    )
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{api}/v1/openapi.json",
            "--checks",
            checks,
            "--header",
            f"Authorization: Bearer {token}",
            "--max-examples",
            "10",
            "--phases",
            "coverage,fuzzing",
            "--seed",
            "61",
            "--request-timeout",
            "150",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        # Integers written as integers: a whole float for one is refused (tests/schemathesis_support.py).
        env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_support", "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert generated and int(generated[1]) > 100 and generated[1] == generated[2], done.stdout[-3000:]


def test_a_solana_transaction_over_http_is_signed_sent_or_refused_by_its_rule(stack: LocalStack, api: str) -> None:
    """POST /solana/transactions (signed and sent), /sign with intent_type solana_transaction
    (signed only) and solana_message (an off-chain message), for an agent with a Solana key on the
    stack's local Solana node."""
    settings = stack.settings
    alice, mallory = Keypair().pubkey(), Keypair().pubkey()
    name = f"agent-http-sol-{os.urandom(3).hex()}"
    agent = asyncio.run(provision_solana_agent(settings, name, allowlist=(str(alice),), message_signing_enabled=True))
    issued = cli_json(settings, "agents", "api-key", "--agent", name)
    hello = messages.encode("hello from the HTTP API", [agent.address])
    not_mine = messages.encode("hello", [str(mallory)])
    me = Pubkey.from_string(agent.address)

    async def recent() -> Hash:
        node = JsonRpc(settings.rpc_url_for("solana-local"), timeout_s=60)
        try:
            return Hash.from_string(await solana.latest_blockhash(node))
        finally:
            await node.close()

    blockhash = asyncio.run(recent())

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    def tx(to: Pubkey, lamports: int) -> str:
        return base64.b64encode(build.unsigned(me, [build.sol_transfer(me, to, lamports)], blockhash)).decode()

    async def scenario(http: ClientSession) -> dict[str, Answer]:
        auth = {"Authorization": f"Bearer {await agent_token(http, api, name, issued['api_key'])}"}
        base = f"{api}/v1/agents/{name}"
        seen: dict[str, Answer] = {}
        for what, path, body in (
            ("sent", "/solana/transactions", {"chain": "solana-local", "transaction": tx(alice, 1_000_000)}),
            (
                "signed",
                "/sign",
                {"intent_type": "solana_transaction", "chain": "solana-local", "transaction": tx(alice, 2_000_000)},
            ),
            ("refused", "/solana/transactions", {"chain": "solana-local", "transaction": tx(mallory, 1_000_000)}),
            ("not base64", "/solana/transactions", {"chain": "solana-local", "transaction": "AAAAA"}),
            ("message", "/sign", {"intent_type": "solana_message", "chain": "solana-local", "message": b64(hello)}),
            (
                "not its message",
                "/sign",
                {"intent_type": "solana_message", "chain": "solana-local", "message": b64(not_mine)},
            ),
        ):
            async with http.post(base + path, json=body, headers=auth) as answer:
                seen[what] = (answer.status, await answer.json())
        return seen

    seen = run_http(scenario)
    status, sent = seen["sent"]
    assert status == 201 and sent["status"] in ("broadcast", "processed", "confirmed", "finalized"), sent
    assert sent["from"] == agent.address and sent["spend"] == {"SOL": "1005000"}
    status, signed = seen["signed"]
    assert (status, signed["status"]) == (201, "sign_only"), signed
    assert VersionedTransaction.from_bytes(base64.b64decode(signed["signed_tx"])).verify_with_results() == [True]
    status, refused = seen["refused"]
    assert (status, refused["code"], refused["stage"]) == (403, Code.RECIPIENT_NOT_ALLOWLISTED, Stage.SOLANA), refused
    status, invalid = seen["not base64"]
    assert status == 400 and "base64" in str(invalid), invalid
    status, message = seen["message"]
    assert (status, message["kind"], message["from"]) == (201, "solana_message", agent.address), message
    assert base64.b64decode(message["message"]) == hello
    assert Signature.from_string(message["signature"]).verify(me, hello)  # solders checks it over the bytes
    status, refused = seen["not its message"]
    assert (status, refused["code"], refused["stage"]) == (
        403,
        Code.SOLANA_MESSAGE_AGENT_NOT_SIGNATORY,
        Stage.SOLANA_MESSAGE,
    )
