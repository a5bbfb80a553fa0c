"""Hostile input, generated: `/incident` parsing and POST /pagerduty/webhooks.

Parsing any text gives a command or a Usage answer, never anything else; the
webhook endpoint never answers 500, and nothing it is sent without a valid
signature, or that is not a well-formed event, changes any state.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from bot.audit.models import AuditRecord
from bot.commands import SEPARATE
from bot.config import parse_config
from bot.incidents.models import Incident, IncidentEvent
from bot.outbox.models import Delivery
from bot.pagerduty.webhooks import MalformedWebhook, parse_event
from bot.settings import Settings
from handlers.incidents import Usage, parse
from sandbox.pagerduty import PagerDutyEmulator
from tests.conftest import TEST_CONFIG
from tests.support import LiveService

SECRET = "whsec-props"
words = st.sampled_from(
    [
        "list",
        "ack",
        "resolve",
        "declare",
        "note",
        "timeline",
        "help",
        "--severity",
        "--route",
        "critical",
        "#42",
        "42",
        "markdown",
        "--",
        "—",
        "'; DROP TABLE x;--",
    ]
)
texts = st.lists(words | st.text(max_size=12), max_size=8).map(" ".join) | st.text(max_size=80)


@given(texts)
def test_incident_command_text_parses_or_gets_usage(text: str) -> None:
    try:
        command = parse(text)
    except Usage as usage:
        answer = usage.answer(SEPARATE)
        assert "Usage" in answer or "/incident" in answer
        return
    assert command.name in {"help", "list", "ack", "resolve", "declare", "note", "timeline"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
events = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=10),
        "event_type": st.sampled_from(
            [
                "incident.triggered",
                "incident.acknowledged",
                "incident.resolved",
                "incident.annotated",
                "incident.escalated",
                "pagey.ping",
                "x",
            ]
        ),
        "resource_type": st.text(max_size=10),
        "occurred_at": st.text(max_size=30) | st.just("2026-11-25T10:00:00Z"),
        "agent": json_values,
        "data": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "id": st.text(max_size=8),
                "type": st.text(max_size=15),
                "incident_key": st.text(max_size=20),
                "status": st.text(max_size=12),
            },
        ),
    },
)
bodies = (
    st.binary(max_size=200)
    | json_values.map(lambda v: json.dumps(v).encode())
    | events.map(lambda e: json.dumps({"event": e}).encode())
)


@given(bodies)
def test_webhook_parser_takes_anything(raw: bytes) -> None:
    with contextlib.suppress(MalformedWebhook):
        parse_event(raw)


def state(service: LiveService) -> tuple[int, ...]:
    with service.runtime.sessions() as db:
        return tuple(
            int(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0)
            for model in (Incident, IncidentEvent, Delivery, AuditRecord)
        )


@pytest.fixture
def webhook_service(settings: Settings, make_service: Callable[..., LiveService]) -> LiveService:
    config = parse_config({**TEST_CONFIG, "oncall": {"pagerduty_channel": "C0ALERTS"}})
    return make_service(
        settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(SECRET)]}), config
    )


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=bodies, signed=st.booleans())
def test_webhook_endpoint_never_fails(
    webhook_service: LiveService, raw: bytes, signed: bool
) -> None:
    before = state(webhook_service)
    signature = PagerDutyEmulator.sign(raw, SECRET if signed else "wrong")
    answer = webhook_service.post(
        "/pagerduty/webhooks", content=raw, headers={"X-PagerDuty-Signature": signature}
    )
    assert answer.status_code < 500
    if not signed:
        assert answer.status_code == 401
        assert state(webhook_service) == before
    elif answer.status_code == 400:
        assert state(webhook_service) == before
