"""`warden mcp` driven by a real MCP client (the SDK's stdio client and `ClientSession`) against
the real stack: the server runs as `python -m infra.cli mcp --agent A` in a child process, and
every answer below went through the worker, the signer and Anvil. Signatures are recovered with
eth-account, so what the server reports is checked against the chain's own cryptography.

One server session serves the whole module: `session` runs every call once, in order, and the
tests read what each returned."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal
from io import TextIOWrapper
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from infra.stack.demo_script import permit_typed_data
from infra.stack.local import LocalStack
from ledger.keys import local_public_key
from ledger.note import ED25519, NoteError, NoteKey
from ledger.receipt import Policy, Receipt, check
from runtime.clock import utcnow
from runtime.config import Settings
from runtime.kafka import end_offsets
from schemas import topics
from schemas.actions import AuditAction
from schemas.codes import Code
from schemas.stages import Stage
from tests.support import forge_rejections, make_agent, warden_mcp

DEST = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
STRANGER = "0x000000000000000000000000000000000000bEEF"
TOKEN = "0x0000000000000000000000000000000000700c3a"
SPENDER = "0x000000000000000000000000000000000000bad1"
TOOLS = {
    "simulate_transaction",
    "simulate_bundle",
    "submit_transaction",
    "sign_transaction",
    "sign_message",
    "sign_typed_data",
    "submit_solana_transaction",  # called in test_solana_pipeline.py
    "sign_solana_message",  # called in test_solana_messages_node.py
    "pay_bitcoin",  # called in test_bitcoin_pipeline.py
    "pay_x402",  # called against the official x402 server in test_x402.py
    "check_policy",
    "get_transaction",
    "list_transactions",
    "list_pending_approvals",
    "get_policy",
    "list_signing_keys",
    "provision_signing_key",
}


async def _calls(settings: Settings, agent: str, address: str, errlog: TextIOWrapper) -> dict[str, Any]:
    server = warden_mcp(settings, agent)
    got: dict[str, Any] = {}
    async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        got["tools"] = (await session.list_tools()).tools

        async def call(name: str, **arguments: Any) -> CallToolResult:
            return await session.call_tool(name, arguments, read_timeout_seconds=150)

        # Each dry run first, then the same request through the pipeline: they must agree.
        got["check_allowed"] = await call("check_policy", chain="anvil", to=DEST, value="0.01")
        # A topic writer answers that submit at once with a forged refusal: the server must not
        # report it (the real outcome comes later, through the worker, the signer and Anvil).
        start = await end_offsets(settings, (topics.INTENTS_SUBMITTED,))
        forged: list[str] = []
        reading = asyncio.Event()
        forger = asyncio.create_task(forge_rejections(settings, agent, start, forged, reading))
        # The forger reads the topic before the submit: on a busy machine its consumer can start
        # after the pipeline has answered, and then it forges nothing.
        await asyncio.wait_for(reading.wait(), 60)
        try:
            got["mined"] = await call("submit_transaction", chain="anvil", to=DEST, value="0.01")
        finally:
            forger.cancel()
        got["forged_for"] = forged
        # Everything before this moment was the mined submit; everything after, the rest.
        between = utcnow().isoformat()
        await asyncio.sleep(0.01)
        got["check_refused"] = await call("check_policy", chain="anvil", to=STRANGER, value="0.01")
        got["refused"] = await call("submit_transaction", chain="anvil", to=STRANGER, value="0.01")
        got["check_human"] = await call("check_policy", chain="anvil", to=DEST, value="0.6")
        got["parked"] = await call("submit_transaction", chain="anvil", to=DEST, value="0.6")
        got["pending"] = await call("list_pending_approvals")
        got["signed"] = await call("sign_transaction", chain="anvil", to=DEST, value="0.02", idempotency_key="k-7")
        got["signed_again"] = await call(
            "sign_transaction", chain="anvil", to=DEST, value="0.02", idempotency_key="k-7"
        )
        got["message"] = await call("sign_message", message="hello from an MCP client", chain="anvil")
        permit = permit_typed_data(TOKEN, 31337, owner=address, spender=SPENDER, value=10**18, nonce=0, deadline=2**40)
        got["typed"] = await call("sign_typed_data", chain="anvil", typed_data=permit)
        mined_id = got["mined"].structured_content["intent_id"]
        got["shown"] = await call("get_transaction", transaction_id=mined_id)
        got["shown_with_bytes"] = await call("get_transaction", transaction_id=mined_id, include_signed_tx=True)
        got["shown_refused"] = await call(
            "get_transaction", transaction_id=got["refused"].structured_content["intent_id"]
        )
        got["missing"] = await call("get_transaction", transaction_id="i-nothing-here")
        got["listed"] = await call("list_transactions")
        got["listed_mined"] = await call("list_transactions", status="mined", include_signed_tx=True)
        got["listed_after"] = await call("list_transactions", since=between, limit=500)
        got["listed_before"] = await call("list_transactions", until=between, limit=500)
        got["listed_naive"] = await call("list_transactions", since="2026-01-01T00:00:00")
        got["provision"] = await call("provision_signing_key", chain="ethereum")
        got["policy"] = await call("get_policy")
        got["keys"] = await call("list_signing_keys")
        got["bad_value"] = await call("submit_transaction", chain="anvil", to=DEST, value="-1")
        # Its receipt: once the ledger has its newest outcome under a signed checkpoint (seconds).
        for _ in range(60):
            got["receipt"] = await call("get_transaction", transaction_id=mined_id, include_receipt=True)
            if got["receipt"].structured_content and got["receipt"].structured_content["receipt"]:
                break
            await asyncio.sleep(1)
        got["refused_receipt"] = await call(
            "get_transaction", transaction_id=got["refused"].structured_content["intent_id"], include_receipt=True
        )
    return got


@pytest.fixture(scope="module")
def session(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = stack.settings
    agent = f"agent-mcp-{os.urandom(3).hex()}"
    _, address, policy = asyncio.run(
        make_agent(
            settings,
            agent,
            tx_to_allowlist=(DEST,),
            tx_max_value_eth="1",
            tx_daily_limit_eth="2",
            approval_threshold_eth="0.5",
            message_signing_enabled=True,
            asset_limits=({"chain": "anvil", "token": TOKEN, "max_per_tx": "2", "daily_limit": "5"},),
        )
    )
    log = tmp_path_factory.mktemp("mcp") / "server.log"
    with open(log, "w") as errlog:
        got = asyncio.run(_calls(settings, agent, address, errlog))
    got.update(agent=agent, address=address, signed_policy=policy, log=log.read_text(), settings=settings)
    return got


def _data(session: dict[str, Any], name: str) -> dict[str, Any]:
    """What the call ``name`` returned as structured content (the server's log when it returned none)."""
    result = session[name]
    assert result.structured_content is not None, (result.content, session["log"][-4000:])
    content: dict[str, Any] = result.structured_content
    return content


def test_every_tool_is_listed_with_its_input_and_output_schema(session: dict[str, Any]) -> None:
    tools = {tool.name: tool for tool in session["tools"]}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.input_schema["type"] == "object" and tool.output_schema["type"] == "object", tool.name
        assert tool.description, tool.name
    assert {"chain", "to", "value", "data", "simulate_first", "idempotency_key"} <= set(
        tools["submit_transaction"].input_schema["properties"]
    )
    assert tools["submit_transaction"].input_schema["properties"]["simulate_first"]["default"] is True
    # A transaction of any family, in its family's shape: each has its signed bytes.
    found = tools["get_transaction"].output_schema
    shapes = [found["$defs"][one["$ref"].rsplit("/", 1)[1]] for one in found["oneOf"]]
    assert len(shapes) == 3 and all("signed_tx" in shape["properties"] for shape in shapes), found


def test_a_submitted_transaction_is_mined_from_the_agents_address(session: dict[str, Any]) -> None:
    result = session["mined"]
    mined = _data(session, "mined")
    assert not result.is_error and mined["status"] == "mined", (mined, session["log"])
    assert mined["block_number"] is not None and mined["tx_hash"].startswith("0x")
    assert mined["idempotency_key"], "an idempotency key is generated when none is given"
    # The submitting caller gets the signed bytes, and they are the agent's.
    assert Account.recover_transaction(mined["signed_tx"]) == session["address"] == mined["from"]
    assert mined["status"] in result.content[0].text and mined["intent_id"] in result.content[0].text


def test_a_transaction_and_a_refusal_come_with_receipts_an_auditor_checks_offline(session: dict[str, Any]) -> None:
    """The receipt of an outcome: its audit event in the ledger, proven under the log's signed
    checkpoint (the shared stack has no witnesses: a quorum of 0), checked with the key alone; the
    refused intent's receipt proves its refusal."""
    settings = session["settings"]
    policy = Policy(NoteKey(settings.ledger.log_name, ED25519, local_public_key(settings.home)))
    for name, intent_id, actions in (
        ("receipt", _data(session, "mined")["intent_id"], {AuditAction.TX_MINED, AuditAction.TX_FINAL}),
        ("refused_receipt", _data(session, "refused")["intent_id"], {AuditAction.INTENT_REJECTED}),
    ):
        shown = _data(session, name)
        assert shown["receipt"], (shown["receipt_unavailable"], session["log"][-2000:])
        receipt = Receipt.parse(shown["receipt"])
        check(receipt, policy)
        assert receipt.event["intent_id"] == intent_id and receipt.event["action"] in actions, receipt.event
        # Another key: refused.
        other = Policy(NoteKey(settings.ledger.log_name, ED25519, bytes(32)))
        with pytest.raises(NoteError):
            check(receipt, other)


def test_a_forged_refusal_on_the_topic_is_not_reported(session: dict[str, Any]) -> None:
    mined = _data(session, "mined")
    # The forger answered this very intent, bound to its digest, before the pipeline did.
    assert mined["intent_id"] in session["forged_for"]
    assert mined["status"] == "mined" and mined["refusal"] is None
    assert mined["forged_outcomes_ignored"] >= 1


def test_a_recipient_off_the_allowlist_is_refused_with_its_rule(session: dict[str, Any]) -> None:
    refused = _data(session, "refused")
    assert refused["status"] == "refused" and refused["tx_hash"] is None
    assert (refused["refusal"]["stage"], refused["refusal"]["code"]) == (
        Stage.ALLOWLIST,
        Code.RECIPIENT_NOT_ALLOWLISTED,
    )
    assert STRANGER.lower() in refused["refusal"]["reason"].lower()
    assert Code.RECIPIENT_NOT_ALLOWLISTED in session["refused"].content[0].text
    shown = _data(session, "shown_refused")
    assert (shown["status"], shown["refusal"]["code"]) == ("refused", Code.RECIPIENT_NOT_ALLOWLISTED)


def test_sign_transaction_signs_without_broadcast_and_a_retried_key_gets_the_first_answer(
    session: dict[str, Any],
) -> None:
    first, again = _data(session, "signed"), _data(session, "signed_again")
    assert first["status"] == "sign_only" and Account.recover_transaction(first["signed_tx"]) == session["address"]
    assert first["intent_id"] != again["intent_id"] and first["idempotency_key"] == again["idempotency_key"] == "k-7"
    assert (again["signed_tx"], again["nonce"]) == (first["signed_tx"], first["nonce"])


def test_a_message_is_signed_and_a_typed_document_the_policy_denies_is_refused(session: dict[str, Any]) -> None:
    message = _data(session, "message")
    assert message["status"] == "signed", message
    signer = Account.recover_message(
        encode_defunct(text="hello from an MCP client"), signature=bytes.fromhex(message["signature"][2:])
    )
    assert signer == session["address"] == message["from"]
    typed = _data(session, "typed")
    assert typed["status"] == "refused" and typed["signature"] is None
    assert (typed["refusal"]["stage"], typed["refusal"]["code"]) == (
        Stage.TYPED_DATA,
        Code.EIP712_SPEND_AUTHORIZATION_REFUSED,
    )


def test_lookups_show_signed_bytes_only_when_asked_and_list_the_mined_one(session: dict[str, Any]) -> None:
    mined = _data(session, "mined")
    shown, with_bytes = _data(session, "shown"), _data(session, "shown_with_bytes")
    assert "signed_tx" not in shown and shown["status"] == "mined" and shown["tx_hash"] == mined["tx_hash"]
    steps = [(step["status"], step["final"]) for step in shown["history"]]
    # Then final, once its block is 2 under the head (a second or two later): shown if it was by then.
    assert steps[:3] == [("signed", False), ("broadcast", False), ("mined", False)], steps
    assert steps[3:] in ([], [("mined", True)]), steps
    assert with_bytes["signed_tx"] == mined["signed_tx"]
    listed = _data(session, "listed")
    by_id = {t["intent_id"]: t for t in listed["transactions"]}
    assert by_id[mined["intent_id"]]["status"] == "mined"
    assert by_id[_data(session, "refused")["intent_id"]]["status"] == "refused"
    assert by_id[_data(session, "signed")["intent_id"]]["status"] == "sign_only"
    assert all("signed_tx" not in t for t in listed["transactions"])
    only_mined = _data(session, "listed_mined")["transactions"]
    assert [t["intent_id"] for t in only_mined] == [mined["intent_id"]]
    assert only_mined[0]["signed_tx"] == mined["signed_tx"]
    missing = session["missing"]
    assert missing.is_error and "list_transactions" in missing.content[0].text
    # By time: the mined submit came before `between`, the refusal and the signatures after it.
    after = {t["intent_id"] for t in _data(session, "listed_after")["transactions"]}
    before = {t["intent_id"] for t in _data(session, "listed_before")["transactions"]}
    assert mined["intent_id"] in before and mined["intent_id"] not in after
    assert _data(session, "refused")["intent_id"] in after - before
    assert session["listed_naive"].is_error, "a time without a zone is refused, not guessed"


def test_admin_actions_are_refused_and_the_policy_and_keys_are_the_agents(session: dict[str, Any]) -> None:
    provision = session["provision"]
    assert provision.is_error
    assert f"warden keys provision --agent {session['agent']} --chain ethereum" in provision.content[0].text
    assert _data(session, "provision")["refused"] is True
    policy, signed = _data(session, "policy"), session["signed_policy"]
    assert policy["version"] == signed.version and policy["tx_to_allowlist"] == [DEST]
    assert (policy["tx_max_value_eth"], policy["tx_daily_limit_eth"]) == ("1", "2")
    assert policy["tx_allowed_chains"] == ["anvil"] and policy["admin_key_id"] == signed.admin_key_id
    assert policy["approval_threshold_eth"] == "0.5"
    assert [(a["token"].lower(), a["max_per_tx"], a["daily_limit"]) for a in policy["asset_limits"]] == [
        (TOKEN, "2", "5")
    ]
    keys = _data(session, "keys")["keys"]
    # From the key store, as the signer holds it: the provisioned key, in use, for EVM networks.
    assert [(k["address"], k["key_chain"], k["in_use"]) for k in keys] == [(session["address"], "ethereum", True)]
    assert "anvil" in keys[0]["chains"]


def test_an_invalid_request_names_the_field(session: dict[str, Any]) -> None:
    bad = session["bad_value"]
    assert bad.is_error and "value" in bad.content[0].text


def test_the_dry_run_agrees_with_what_the_pipeline_then_decides(session: dict[str, Any]) -> None:
    allowed, mined = _data(session, "check_allowed"), _data(session, "mined")
    assert allowed["decision"] == "allowed" and allowed["deciding"] is None, allowed
    assert all(stage["passed"] for stage in allowed["stages"]) and not allowed["not_judged"]
    assert [s["stage"] for s in allowed["stages"]][:2] == [Stage.INTAKE, Stage.CHAIN] and mined["status"] == "mined"

    refused, submitted = _data(session, "check_refused"), _data(session, "refused")
    assert refused["decision"] == "refused"
    deciding = (refused["deciding"]["stage"], refused["deciding"]["code"])
    assert (
        deciding
        == (submitted["refusal"]["stage"], submitted["refusal"]["code"])
        == (
            Stage.ALLOWLIST,
            Code.RECIPIENT_NOT_ALLOWLISTED,
        )
    )
    assert "value_cap" in refused["not_judged"]  # nothing after the deciding rule is judged
    assert Code.RECIPIENT_NOT_ALLOWLISTED in session["check_refused"].content[0].text

    human, parked = _data(session, "check_human"), _data(session, "parked")
    assert human["decision"] == "needs_human" and "approval threshold" in human["why_human"], human
    assert parked["status"] == "awaiting_approval" and parked["awaiting_approval"]["reason"], parked
    pending = _data(session, "pending")["pending"]
    assert [(p["intent_id"], p["value"], p["to"]) for p in pending] == [(parked["intent_id"], "0.6", DEST)]
    assert "approval threshold" in pending[0]["reason"]


def test_the_policy_shows_what_is_left_of_each_rolling_limit(session: dict[str, Any]) -> None:
    windows = {w["asset"].lower(): w for w in _data(session, "policy")["windows_24h"]}
    # The native window holds what the signer reserved for the mined and the signed-only
    # transaction (value and worst-case fee), to the wei: the retry under the signed one's
    # idempotency key, answered with the same transaction, is not counted twice.
    reserved = sum(int(_data(session, name)["max_spend_wei"]) for name in ("mined", "signed"))
    native = windows["native"]
    assert native["limit"] == "2"
    assert Decimal(native["spent_24h"]) == Decimal(reserved) / 10**18
    assert Decimal(native["left"]) == 2 - Decimal(reserved) / 10**18
    token = windows[f"anvil:{TOKEN}".lower()]
    assert (token["limit"], token["spent_24h"], token["left"]) == ("5", "0", "5")
