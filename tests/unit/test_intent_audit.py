"""`schemas.emit.intent_audit`, the one way a service writes an audit event about an intent: the
same bytes, and so the same event id, as the event spelt out field by field, so the ledger (which
keeps the first of an id) records nothing new for an event written before; and the intent's id,
agent and digest come from one `IntentRef`, so an event cannot name one intent and carry another's."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas.actions import AuditAction
from schemas.emit import IntentRef, audit, intent_audit

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
REF = IntentRef("treasury", "intent-1", "ab" * 32)


@pytest.mark.parametrize("digest", ["ab" * 32, None])
@pytest.mark.parametrize("id_parts", [(), ("signing",), ("0xfeed", "mined", "")])
def test_the_event_is_the_one_spelt_out_field_by_field(
    digest: str | None, id_parts: tuple[str, str, str] | tuple[str] | tuple[()]
) -> None:
    ref = IntentRef("treasury", "intent-1", digest)
    details = {"reason": "over the cap", "facts": {"cap_wei": "1"}, "from": "0xabc"}
    spelt_out = audit(
        "service:streams",
        AuditAction.STAGE_FAILED,
        "intent:intent-1",
        T0,
        "intent-1",
        *id_parts,
        intent_id="intent-1",
        agent_id="treasury",
        intent_digest=digest,
        **details,
    )
    assert intent_audit("service:streams", AuditAction.STAGE_FAILED, ref, T0, *id_parts, **details) == spelt_out


def test_the_intent_s_names_come_from_its_reference_and_nowhere_else() -> None:
    event = orjson.loads(intent_audit("service:signer", AuditAction.TX_SIGNED, REF, T0, "0xfeed").value)
    assert (event["resource"], event["intent_id"], event["agent_id"]) == ("intent:intent-1", "intent-1", "treasury")
    assert event["details"]["intent_digest"] == REF.digest
    with pytest.raises(TypeError):
        intent_audit("service:signer", AuditAction.TX_SIGNED, REF, T0, intent_id="intent-2")
