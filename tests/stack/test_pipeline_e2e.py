"""The whole pipeline on the real embedded stack: intents in, signed transactions out."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import clickhouse_connect
import orjson
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_utils import to_checksum_address

from infra.stack import demo, demo_script
from infra.stack.local import LocalStack
from runtime.config import Settings
from runtime.kafka import end_offsets
from runtime.rpc import JsonRpc
from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import audit_events_of
from schemas.codes import Code
from schemas.fields import parse_native_amount
from schemas.intent import TransactionIntent
from schemas.outcomes import IntentRejected, SignedTransaction
from sdk.client import Client, new_intent, wait_outcomes
from sdk.outcomes import Outcome
from tests.support import balance, everything_recorded, make_agent, read_topic


async def code_at(settings: Settings, address: str) -> str:
    node = JsonRpc(settings.rpc_url_for("anvil"), timeout_s=120)
    try:
        code: str = await node.call("eth_getCode", address, "latest")
        return code
    finally:
        await node.close()


CAROL = "0x000000000000000000000000000000000000ca01"


def test_demo_yields_exactly_its_expected_outcomes(stack: LocalStack, run: Callable[..., Any]) -> None:
    settings = stack.settings
    before = {a: run(balance(settings, a)) for a in (demo_script.ALICE, demo_script.BOB)}
    mcp_payee_before = run(balance(settings, demo_script.MCP_PAYEE))
    audit_start = {tp.partition: end for tp, end in run(end_offsets(settings, (topics.AUDIT_EVENTS,))).items()}
    report = run(demo.run_script(settings, progress=lambda m: None, solana=True))
    outcomes = [(r["intent"], r["code"] if r["outcome"] == "rejected" else r["outcome"]) for r in report["intents"]]
    assert outcomes == demo_script.expected_outcomes(settings)
    assert report["all_as_expected"]
    # The Solana section, on the stack's local node: each intent as the demo expects it.
    solana = [(r["what"], r.get("code") or r["status"]) for r in report["solana_session"]["intents"]]
    assert solana == [
        ("0.25 SOL to alice", "finalized"),
        ("5 DEMO to alice", "finalized"),
        ("1 DEMO to mallory", Code.RECIPIENT_NOT_ALLOWLISTED),
        ("an unknown program", Code.SOLANA_PROGRAM_NOT_ALLOWED),
        ("2 SOL to alice (over the cap)", Code.VALUE_OVER_CAP),
        ("an off-chain message", "signed"),
    ]
    mined = [r for r in report["intents"] if r["outcome"] == "mined"]
    # Every nonce once, none skipped, except the one the 7702 delegation's own authorization used.
    delegation = next(r for r in mined if r["tx_type"] == 4)
    assert sorted(r["nonce"] for r in mined) == [n for n in range(len(mined) + 1) if n != delegation["nonce"] + 1]
    for row in mined:
        # An independent implementation recovers the sender from the signed bytes.
        assert Account.recover_transaction(row["signed_tx"]) == report["address"]
    paid = {to_checksum_address(demo_script.ALICE): 0, to_checksum_address(demo_script.BOB): 0}
    for row in mined:
        if row["to"] in paid:  # the token transfers went to the token contract, with no value
            paid[row["to"]] += parse_native_amount(row["value"])
    after = {to_checksum_address(a): run(balance(settings, a)) for a in (demo_script.ALICE, demo_script.BOB)}
    before = {to_checksum_address(a): v for a, v in before.items()}
    # 0.5 + 0.1 + 0.2 to alice, 0.25 + 0.9 to bob: exact wei, checked on the chain itself.
    assert paid == {
        to_checksum_address(demo_script.ALICE): 80 * 10**16,
        to_checksum_address(demo_script.BOB): 115 * 10**16,
    }
    assert {a: after[a] - before[a] for a in after} == paid
    # The sender paid exactly the values plus the fees its receipts report, and nothing else.
    fees_paid = sum(int(r["fee_wei"]) for r in mined)
    assert 0 < fees_paid <= sum(int(r["max_spend_wei"]) for r in mined) - sum(paid.values())
    assert run(balance(settings, report["address"])) == 100 * 10**18 - sum(paid.values()) - fees_paid
    ceiling = next(r for r in report["intents"] if r["code"] == Code.FEE_OVER_CEILING)
    assert "1000000000000 wei per gas" in ceiling["reason"] and "ceiling of 100000000000" in ceiling["reason"]
    revert = next(r for r in report["intents"] if r["code"] == Code.SIMULATION_REVERTED)
    assert demo_script.REVERT_REASON in revert["reason"]
    # The other signing paths, each checked by an independent implementation or the chain itself.
    message, permit = (r for r in report["intents"] if r["outcome"] == "signed")
    assert (
        Account.recover_message(
            encode_defunct(text="Warden demo: I am agent demo-agent"), signature=bytes.fromhex(message["signature"][2:])
        )
        == report["address"]
    )
    permit_doc = encode_typed_data(
        full_message=demo_script._permit({"address": report["address"], **report["contracts"]})
    )
    assert Account.recover_message(permit_doc, signature=bytes.fromhex(permit["signature"][2:])) == report["address"]
    by_name = {r["intent"]: r for r in mined}
    assert by_name["blob transaction (EIP-4844) with its blob"]["tx_type"] == 3
    assert by_name["delegate the account to a contract (7702)"]["tx_type"] == 4
    assert run(code_at(settings, report["address"])) == "0xef0100" + demo_script.DELEGATE[2:].lower()

    # The agent session through MCP, from what its client was told, checked against the chain.
    session = report["mcp_session"]
    assert session["as_expected"] and "error" not in session, session
    results = {c["tool"]: c["result"] for c in session["calls"] if not c["is_error"]}
    assert list(results) == ["simulate_transaction", "check_policy", "submit_transaction", "list_transactions"]
    value = parse_native_amount(demo_script.MCP_VALUE)
    (step,) = results["simulate_transaction"]["steps"]
    changes = {(r["address"].lower(), r["token"]): r["change"] for r in step["balance_changes"]}
    assert parse_native_amount(changes[(demo_script.MCP_PAYEE, "native")]) == value
    assert changes[(session["address"].lower(), "native")] == "-" + demo_script.MCP_VALUE
    checked = results["check_policy"]
    assert checked["decision"] == "allowed" and checked["deciding"] is None
    assert [(w["asset"], w["left"]) for w in checked["windows_24h"]] == [("native", "1")]
    mined_by_mcp = results["submit_transaction"]
    assert mined_by_mcp["status"] == "mined" and mined_by_mcp["value_wei"] == str(value)
    assert Account.recover_transaction(mined_by_mcp["signed_tx"]) == session["address"] == mined_by_mcp["from"]
    assert session["address"] != report["address"]  # its own agent: the script's nonces and balance stay its own
    listed = {t["intent_id"]: t for t in results["list_transactions"]["transactions"]}
    assert listed[mined_by_mcp["intent_id"]]["tx_hash"] == mined_by_mcp["tx_hash"]
    assert (
        listed[mined_by_mcp["intent_id"]]["status"] == "mined" and "signed_tx" not in listed[mined_by_mcp["intent_id"]]
    )
    assert run(balance(settings, demo_script.MCP_PAYEE)) - mcp_payee_before == value

    # The auditor's view of the same run: every event in the ledger, every chain verified,
    # and each intent's trail complete.
    ledger = demo.verify_ledger(settings, progress=lambda m: None, since=audit_start)
    assert ledger["ok"] and ledger["events_in_ledger"] >= ledger["records_published"] > 0
    # Every writer of this run (worker, signer, the admin's provisioning, custody) signed its
    # audit records with a key the ledger pins.
    assert ledger["records_not_believed"] == 0
    host, _, port = settings.ledger_http.rpartition(":")
    client = clickhouse_connect.get_client(host=host, port=int(port))
    for row in report["intents"]:
        actions = [
            a
            for (a,) in client.query(
                "SELECT action FROM audit_log WHERE intent_id = {i:String} ORDER BY ts, seq",
                parameters={"i": row["intent_id"]},
            ).result_rows
        ]
        assert actions[0] == AuditAction.INTENT_SUBMITTED
        if row["outcome"] == "mined":
            assert actions.count(AuditAction.STAGE_PASSED) == len(row["stages"])
            assert {AuditAction.TX_SIGNED, AuditAction.TX_MINED} <= set(actions)
            # Approved by the worker, or parked and approved by an admin.
            by_an_admin = {AuditAction.INTENT_PARKED, AuditAction.INTENT_HUMAN_APPROVED} <= set(actions)
            assert AuditAction.INTENT_APPROVED in actions or by_an_admin
        elif row["outcome"] == "signed":
            assert actions.count(AuditAction.STAGE_PASSED) == len(row["stages"])
            assert {AuditAction.INTENT_APPROVED, AuditAction.MESSAGE_SIGNED} <= set(actions)
        else:
            assert AuditAction.STAGE_FAILED in actions and AuditAction.INTENT_REJECTED in actions
    # The MCP session's transfer was judged and audited like any intent.
    mcp_actions = {
        a
        for (a,) in client.query(
            "SELECT action FROM audit_log WHERE intent_id = {i:String}", parameters={"i": mined_by_mcp["intent_id"]}
        ).result_rows
    }
    wanted = {AuditAction.INTENT_SUBMITTED, AuditAction.INTENT_APPROVED, AuditAction.TX_SIGNED, AuditAction.TX_MINED}
    assert wanted <= mcp_actions
    # The analysts' view of the signed messages: the kind, and for typed data what it was for.
    rows = client.query(
        "SELECT kind, primary_type, verifying_contract, message_hash FROM signed_messages "
        "WHERE intent_id IN {ids:Array(String)} ORDER BY signed_at",
        parameters={"ids": [message["intent_id"], permit["intent_id"]]},
    ).result_rows
    assert rows == [
        ("personal_sign", "", "", message["message_hash"]),
        ("typed_data", "Permit", report["contracts"]["token"], permit["message_hash"]),
    ]


def test_each_transaction_type_is_mined_and_recovers_to_the_sender(stack: LocalStack, run: Callable[..., Any]) -> None:
    settings = stack.settings

    async def scenario() -> tuple[str, list[TransactionIntent], dict[str, Outcome], int]:
        agent_key, address, _ = await make_agent(settings, "types-agent")
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        before = await balance(settings, CAROL)
        intents = [
            new_intent(
                agent_key,
                agent_id="types-agent",
                chain="anvil",
                to=CAROL,
                value=v,
                tx_type=t,
                broadcast=True,
                access_list=al,
            )
            for t, v, al in (
                (0, "0.001", ()),
                (1, "0.002", ({"address": CAROL, "storage_keys": ["0x" + "00" * 31 + "01"]},)),
                (2, "0.004", ()),
            )
        ]
        async with Client(settings) as client:
            for intent in intents:
                await client.submit(intent)
        outcomes = await wait_outcomes(settings, intents, 120, start)
        after = await balance(settings, CAROL)
        return address, intents, outcomes, after - before

    address, intents, outcomes, received = run(scenario())
    assert received == 7 * 10**15
    for intent in intents:
        signed = outcomes[intent.intent_id]
        assert isinstance(signed, SignedTransaction), signed
        assert signed.status == "mined" and signed.tx_type == intent.tx_type and signed.tee == "none"
        raw = bytes.fromhex(signed.signed_tx[2:])
        assert (raw[0] == intent.tx_type) if intent.tx_type else raw[0] >= 0xC0
        assert Account.recover_transaction(raw) == address == signed.from_


def test_redelivered_and_idempotent_intents_sign_once(stack: LocalStack, run: Callable[..., Any]) -> None:
    settings = stack.settings

    async def scenario() -> tuple[
        TransactionIntent, TransactionIntent, TransactionIntent, dict[str, Outcome], list[SignedTransaction]
    ]:
        agent_key, address, _ = await make_agent(settings, "idem-agent")
        start = await end_offsets(settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED))
        first = new_intent(
            agent_key, agent_id="idem-agent", chain="anvil", to=CAROL, value="0.01", idempotency_key="order-42"
        )
        retry = new_intent(
            agent_key,
            agent_id="idem-agent",
            chain="anvil",
            to=CAROL,
            value="0.01",
            idempotency_key="order-42",
            intent_id="raw-producer-retry-42",
        )
        async with Client(settings) as client:
            await client.submit(first)
            await client.submit(first)  # a producer retry of the very same record
            await asyncio.sleep(0.5)
            await client.submit(retry)  # same idempotency key, another intent id
        # A client that lost its first attempt builds the intent again (a later created_at): the
        # key, not the intent id, gets it the first answer. It was refused INTENT_ID_REUSED when
        # the SDK derived the id from the key, while the first was signed.
        rebuilt = new_intent(
            agent_key, agent_id="idem-agent", chain="anvil", to=CAROL, value="0.01", idempotency_key="order-42"
        )
        async with Client(settings) as client:
            await client.submit(rebuilt)
        outcomes = await wait_outcomes(settings, [first, retry, rebuilt], 120, start)
        await asyncio.sleep(1.0)
        signed = [SignedTransaction.from_bytes(v) for v in await read_topic(settings, topics.TXS_SIGNED, start=start)]
        return first, retry, rebuilt, outcomes, signed

    first, retry, rebuilt, outcomes, signed = run(scenario())
    a, b, c = outcomes[first.intent_id], outcomes[retry.intent_id], outcomes[rebuilt.intent_id]
    assert isinstance(a, SignedTransaction) and isinstance(b, SignedTransaction), (a, b)
    assert isinstance(c, SignedTransaction), c
    assert a.signed_tx == b.signed_tx == c.signed_tx and a.nonce == b.nonce == c.nonce
    mine = [s for s in signed if s.intent_id in (first.intent_id, retry.intent_id, rebuilt.intent_id)]
    assert {s.signed_tx for s in mine} == {a.signed_tx}
    assert {s.nonce for s in mine} == {a.nonce}


def test_bad_inputs_are_rejected_with_reasons_and_the_worker_keeps_going(
    stack: LocalStack, run: Callable[..., Any]
) -> None:
    settings = stack.settings

    async def scenario() -> tuple[
        dict[str, bytes],
        TransactionIntent,
        TransactionIntent,
        dict[str, Outcome],
        list[dict[str, Any]],
        list[dict[str, Any]],
        list[dict[str, Any]],
    ]:
        agent_key, _, policy = await make_agent(settings, "bad-input-agent")
        good = new_intent(agent_key, agent_id="bad-input-agent", chain="anvil", to=CAROL, value="0.001")
        doc = orjson.loads(good.to_bytes())

        def variant(**changes: Any) -> bytes:
            return orjson.dumps({**doc, **changes, "intent_id": f"bad-{len(changes)}-{sorted(changes)[0]}"})

        forged = new_intent(agent_key, agent_id="bad-input-agent", chain="anvil", to=CAROL, value="0.002")
        forged_doc = {**orjson.loads(forged.to_bytes()), "value": "0.9"}  # changed after signing
        # What was really sent: its rejection is bound to this record's digest, not the signed one's.
        forged = TransactionIntent.model_validate(forged_doc)
        bad = {
            "malformed": b'{"intent_id": "x", ',
            "missing": orjson.dumps({"intent_id": "bad-missing", "agent_id": "bad-input-agent"}),
            "checksum": variant(to="0xAbCdEf0000000000000000000000000000000000"),
            "negative": variant(value="-1"),
            "precise": variant(value="0.0000000000000000001"),
            "chain": variant(chain="narnia"),
            "hex": variant(data="0xnothex"),
            "oversize": orjson.dumps(
                {**doc, "intent_id": "bad-oversize", "data": "0x" + "ab" * (settings.max_record_bytes // 2 + 1)}
            ),
        }
        start = await end_offsets(
            settings, (topics.INTENTS_REJECTED, topics.TXS_SIGNED, topics.DLQ, topics.AUDIT_EVENTS)
        )
        unsigned = policy.model_copy(update={"version": policy.version + 1, "signature": "", "tx_allowed_chains": ()})
        async with Client(settings) as client:
            for raw in bad.values():
                await client.send(topics.INTENTS_SUBMITTED, "bad-input-agent", raw)
            await client.send(topics.INTENTS_SUBMITTED, "bad-input-agent", orjson.dumps(forged_doc))
            await client.publish_policy(unsigned, wait_s=None)
            await client.submit(good)
        outcomes = await wait_outcomes(settings, [good, forged], 120, start)
        await asyncio.sleep(1.0)
        dlq = [orjson.loads(v) for v in await read_topic(settings, topics.DLQ, start=start)]
        rejected = [orjson.loads(v) for v in await read_topic(settings, topics.INTENTS_REJECTED, start=start)]
        audits = [
            e.model_dump(mode="json")
            for v in await read_topic(settings, topics.AUDIT_EVENTS, start=start)
            for e in audit_events_of(v)
        ]
        return bad, good, forged, outcomes, dlq, rejected, audits

    bad, good, forged, outcomes, dlq, rejected, audits = run(scenario())
    assert isinstance(outcomes[good.intent_id], SignedTransaction)  # the worker kept going
    forged_out = outcomes[forged.intent_id]
    assert isinstance(forged_out, IntentRejected) and forged_out.code == Code.AGENT_SIGNATURE_INVALID
    reasons = {base64.b64decode(d["payload_b64"]): d["reason"] for d in dlq}
    expect = {
        "malformed": "not valid JSON",
        "missing": "chain: is required",
        "checksum": "bad EIP-55 checksum",
        "negative": "value: must be >= 0",
        "precise": "at most 18 are allowed",
        "chain": "unknown chain 'narnia'",
        "hex": "data: must be 0x-prefixed hex",
        "oversize": f"exceeds the {settings.max_record_bytes}-byte limit",
    }
    for name, raw in bad.items():
        reason = next((r for payload, r in reasons.items() if raw.startswith(payload[:200]) and payload), None)
        assert reason is not None, f"{name} not in the DLQ"
        assert expect[name] in reason, (name, reason)
    invalid = {r["intent_id"]: r for r in rejected if r["code"] == Code.INVALID_INTENT}
    assert "bad-missing" in invalid and "chain: is required" in invalid["bad-missing"]["reason"]
    assert sum(1 for a in audits if a["action"] == AuditAction.DLQ_RECORDED) >= len(bad)
    refused = [a for a in audits if a["action"] == AuditAction.POLICY_REFUSED and a["agent_id"] == "bad-input-agent"]
    assert refused and "unsigned" in refused[0]["details"]["reason"]


def test_no_private_key_bytes_anywhere_after_the_runs(stack: LocalStack, run: Callable[..., Any]) -> None:
    """Runs last in this module: after the demo and every test above, no form of any
    provisioned private key is in any topic (changelogs included) or any log file."""
    from signer.custody.hygiene import find_leaks
    from signer.custody_wiring import keystore_from_settings

    settings = stack.settings
    store = keystore_from_settings(settings)
    keys = store.list_keys("admin:local-admin")
    assert keys  # at least demo-agent; more when the whole module ran
    records, rows, haystack = run(everything_recorded(settings))
    assert records > 100 and rows > 100
    for key in keys:
        with store.open_private_key(key.path, key.version) as private_key:
            assert find_leaks(haystack, bytes(private_key)) == []
