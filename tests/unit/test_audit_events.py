"""Audit events: join_audits puts outcomes first and each agent's events in one record in order,
within the size limit, and an audit event built without the model is the model's bytes or is left
to it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import topics
from schemas.actions import AuditAction
from schemas.audit import AuditEvent, audit_events_of, event_id
from schemas.emit import Emit, _plain_event_bytes, audit, join_audits


def _audit_emit(agent: str, n: int, pad: int = 0) -> Emit:
    return audit(
        "service:streams",
        AuditAction.STAGE_PASSED,
        f"intent:{agent}-{n}",
        datetime(2026, 11, 23, tzinfo=timezone.utc),
        agent,
        str(n),
        agent_id=agent,
        n=n,
        pad="x" * pad,
    )


def test_join_audits_puts_outcomes_first_and_each_agents_events_in_one_record_in_order() -> None:
    x, y = Emit(topics.INTENTS_APPROVED, "a", b"x"), Emit(topics.TXS_SIGNED, "b", b"y")
    a1, a2, a3, b1 = _audit_emit("a", 1), _audit_emit("a", 2), _audit_emit("a", 3), _audit_emit("b", 1)
    joined = join_audits([a1, x, a2, b1, y, a3], max_bytes=1 << 20)
    assert joined[:2] == [x, y]
    assert [(e.topic, e.key) for e in joined[2:]] == [(topics.AUDIT_EVENTS, "a"), (topics.AUDIT_EVENTS, "b")]
    assert [e.to_bytes() for e in audit_events_of(joined[2].value)] == [a1.value, a2.value, a3.value]
    assert joined[3].value == b1.value  # one event stays a plain AuditEvent
    assert join_audits([a1, x], max_bytes=1 << 20) == [x, a1]  # one event alone: still after the outcome


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 900)), max_size=30),
    max_bytes=st.integers(300, 4000),
)
def test_join_audits_keeps_every_event_in_order_within_max_bytes(sizes: list[tuple[str, int]], max_bytes: int) -> None:
    emits = [_audit_emit(agent, n, pad) for n, (agent, pad) in enumerate(sizes)]
    joined = join_audits(emits, max_bytes)
    for agent in "abc":
        mine = [e for e in joined if e.key == agent]
        assert all(e.topic == topics.AUDIT_EVENTS for e in mine)
        assert [ev.to_bytes() for e in mine for ev in audit_events_of(e.value)] == [
            e.value for e in emits if e.key == agent
        ]
        # Over max_bytes only where one event alone is.
        assert all(len(e.value) <= max_bytes or len(audit_events_of(e.value)) == 1 for e in mine)


# --- audit events built without the model ----------------------------------------------------------

_JSON_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# An action no AuditAction names: the model takes any string (a newer service's action), as `audit` does.
UNNAMED = cast(AuditAction, "a")
_ZONES = st.sampled_from([timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7, minutes=-30))])


@settings(max_examples=300)
@given(
    actor=st.text(max_size=20),
    action=st.text(max_size=20),
    resource=st.text(max_size=20),
    ts=st.datetimes(timezones=_ZONES),
    intent_id=st.none() | st.text(max_size=10),
    agent_id=st.none() | st.text(max_size=10),
    details=st.dictionaries(st.text(max_size=8).map("d_".__add__), _JSON_PLAIN, max_size=5),
)
def test_an_audit_event_built_without_the_model_is_the_models_bytes(
    actor: str,
    action: str,
    resource: str,
    ts: datetime,
    intent_id: str | None,
    agent_id: str | None,
    details: dict[str, Any],
) -> None:
    fields: dict[str, Any] = dict(
        event_id="e" * 32,
        actor=actor,
        action=action,
        resource=resource,
        ts=ts,
        intent_id=intent_id,
        agent_id=agent_id,
        details=details,
    )
    assert _plain_event_bytes(fields) == AuditEvent(**fields).to_bytes()
    emitted = audit(
        actor, cast(AuditAction, action), resource, ts, "id", intent_id=intent_id, agent_id=agent_id, **details
    )
    assert emitted.value == AuditEvent(**{**fields, "event_id": event_id(action, "id")}).to_bytes()


@pytest.mark.parametrize(
    "details, why",
    [
        ({"amount": 1.5}, "a float: the model's form of it decides"),
        ({"at": datetime(2026, 11, 21, tzinfo=timezone.utc)}, "a datetime inside the details"),
        ({"raw": b"\x00"}, "bytes"),
        ({"facts": {1: "x"}}, "a key that is not a string"),
        ({"sum": [2**64, -(2**63) - 1]}, "integers past 64 bits: the model writes their decimal text"),
    ],
)
def test_an_audit_event_that_is_not_plain_json_is_left_to_the_model(details: dict[str, Any], why: str) -> None:
    fields: dict[str, Any] = dict(
        event_id=event_id("a", "id"),
        actor="service:streams",
        action="a",
        resource="r",
        ts=datetime(2026, 11, 21, tzinfo=timezone.utc),
        intent_id=None,
        agent_id=None,
        details=details,
    )
    assert _plain_event_bytes(fields) is None, why
    assert (
        audit("service:streams", UNNAMED, "r", fields["ts"], "id", **details).value == AuditEvent(**fields).to_bytes()
    )


def test_an_audit_event_the_model_refuses_is_refused_on_either_path() -> None:
    with pytest.raises(ValidationError):
        audit("service:streams", UNNAMED, "r", datetime(2026, 11, 21), "id")  # no time zone
