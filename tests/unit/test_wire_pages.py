"""The wire contract pages in docs/ against the code: every field listed with its default and
whether it is signed, the example is what Python computes."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import schemas
from schemas.auth import public_key_hex, sign_intent
from schemas.intent import TransactionIntent
from schemas.policy import AgentPolicy
from schemas.record import Evolving
from tests.wire_support import CHECKSUMMED, EXAMPLE_SEED, block_after, json_default, page_text


def _between(marker: str) -> str:
    text = page_text()
    start = text.index(f"<!-- wire:{marker} -->")
    return text[start : text.index("<!-- /wire:", start)]


def _rows(marker: str) -> list[list[str]]:
    rows = [line for line in _between(marker).splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows]


def _code(cell: str) -> str:
    """The first `code` span of a table cell."""
    found = re.search(r"`([^`]*)`", cell)
    assert found is not None, cell
    return found.group(1)


@pytest.mark.parametrize("model", [TransactionIntent, AgentPolicy])
def test_the_page_lists_every_field_with_its_default_and_whether_it_is_signed(
    model: type[AgentPolicy] | type[TransactionIntent],
) -> None:
    listed = {_code(name): (default, presence) for name, _kind, default, presence in _rows(f"fields {model.__name__}")}
    omitted = model._OMITTED_AT_DEFAULT
    expected = {}
    for name, field in model.model_fields.items():
        default = "required" if field.is_required() else json.dumps(json_default(field.default), ensure_ascii=False)
        presence = (
            "never" if name in ("signature", "cosignatures") else "omitted at default" if name in omitted else "always"
        )
        expected[name] = (default, presence)
    got = {
        name: (d if d == "required" else json.dumps(json.loads(_code(d)), ensure_ascii=False), p)
        for name, (d, p) in listed.items()
    }
    assert got == expected


def _schemas_classes() -> dict[str, type]:
    """Every class of the schemas package, by name, taken from the module that defines it."""
    classes: dict[str, type] = {}
    for info in pkgutil.iter_modules(schemas.__path__):
        module = importlib.import_module(f"schemas.{info.name}")
        classes.update(
            (name, cls)
            for name, cls in vars(module).items()
            if isinstance(cls, type) and cls.__module__ == module.__name__
        )
    return classes


def test_the_page_lists_every_field_left_out_at_its_default() -> None:
    listed = {(_code(record), _code(field)): json.loads(_code(default)) for record, field, default in _rows("omitted")}
    in_code = {}
    for name, cls in _schemas_classes().items():
        if issubclass(cls, Evolving) and cls.__dict__.get("_OMITTED_AT_DEFAULT"):
            for field, default in cls.__dict__["_OMITTED_AT_DEFAULT"].items():
                assert field in cls.model_fields, (name, field)
                in_code[(name, field)] = json_default(default)
    assert listed == in_code


def test_the_page_example_is_what_python_computes() -> None:
    sent = json.loads(block_after("example-sent"))
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(EXAMPLE_SEED))
    assert EXAMPLE_SEED in page_text() and public_key_hex(key) in page_text()
    signed = sign_intent(TransactionIntent.model_validate(sent), key)
    assert block_after("example-signing-bytes") == signed.signing_bytes().decode()
    digest_and_signature = ["digest", signed.digest(), "signature", signed.signature]
    assert block_after("example-digest-signature").split() == digest_and_signature


def _page_policy_bytes(full: dict[str, Any], omit: bool) -> bytes:
    """A policy's signing bytes as section 3 says to build them, from a record that names every
    field: the fields of the "omitted at default" table left out while at their default (and a
    contract-call rule's ``unsimulated`` while false), canonical JSON."""
    table = {
        _code(field): json.loads(_code(default))
        for record, field, default in _rows("omitted")
        if _code(record) == "AgentPolicy"
    }
    body = {
        k: v
        for k, v in full.items()
        if k not in ("signature", "cosignatures") and not (omit and k in table and v == table[k])
    }
    if omit:
        body["contract_calls"] = [
            {k: v for k, v in rule.items() if not (k == "unsimulated" and v is False)}
            for rule in body.get("contract_calls", [])
        ]
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("omit", [True, False])
def test_a_policy_signed_as_the_page_says_verifies_and_one_that_keeps_defaults_does_not(omit: bool) -> None:
    from runtime.admins import Admins
    from schemas.auth import policy_signature_valid

    admin = Ed25519PrivateKey.generate()
    full = {
        "schema_version": 1,
        "agent_id": "agent-7",
        "version": 2,
        "intents_api_enabled": True,
        "tx_allowed_chains": ["base"],
        "tx_to_allowlist": [CHECKSUMMED],
        "tx_max_value_eth": "0.5",
        "tx_daily_limit_eth": None,
        "tx_max_fee_per_gas": "100000000000",
        "require_simulation": False,
        "sender_address": None,
        "message_signing_enabled": False,
        "message_max_bytes": 1024,
        "eip712_domain_allowlist": [],
        "eip712_default_policy": "deny",
        "eip712_no_value_types": [],
        "eip7702_delegate_allowlist": [],
        "eip7702_allow_any_chain": False,
        "asset_limits": [],
        "block_unlimited_approvals": True,
        "approval_threshold_eth": "1",
        "approval_timeout_s": 3600,
        "contract_calls": [
            {"contract": CHECKSUMMED, "selectors": ["0x12345678"], "unsimulated": False},
            {"contract": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "selectors": "any", "unsimulated": True},
        ],
        "agent_public_key": public_key_hex(Ed25519PrivateKey.generate()),
        "issued_at": "2026-11-21T10:00:00Z",
        "admin_key_id": "admin-1",
    }
    signed = {**full, "signature": admin.sign(_page_policy_bytes(full, omit)).hex()}
    policy = AgentPolicy.model_validate(signed)
    assert policy.signing_bytes() == _page_policy_bytes(full, True)
    assert policy_signature_valid(policy, Admins.with_threshold({"admin-1": public_key_hex(admin)}, 1)) is omit
