"""A signed PagerDuty webhook that is not a v3 event: answered 400, logged by its delivery
id with the reason (never its body), and counted apart from forged deliveries."""

from __future__ import annotations

import json

import pytest

from sandbox.pagerduty import PagerDutyEmulator
from tests.incidents.test_webhooks import SECRET, webhook_service  # noqa: F401 (fixture)
from tests.support import LiveService, metric

COUNTER = "opsbot_pagerduty_webhooks_total"


def test_a_signed_event_that_does_not_parse_is_logged_and_counted_as_malformed(
    webhook_service: LiveService,  # noqa: F811 (the fixture)
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An incident event whose incident has no id, and a title that must stay out of logs.
    body = json.dumps(
        {
            "event": {
                "id": "E-no-incident-id",
                "event_type": "incident.triggered",
                "data": {"type": "incident", "title": "db-password=hunter2"},
            }
        }
    ).encode()
    headers = {
        "X-PagerDuty-Signature": PagerDutyEmulator.sign(body, SECRET),
        "X-Webhook-Id": "w-malformed-1",
    }
    with caplog.at_level("WARNING", logger="handlers.pagerduty_webhooks"):
        answer = webhook_service.post("/pagerduty/webhooks", content=body, headers=headers)

    assert answer.status_code == 400
    assert "the incident has no id" in answer.json()["message"]
    [said] = [r for r in caplog.records if "w-malformed-1" in r.getMessage()]
    assert said.levelname == "WARNING"
    assert "the incident has no id" in said.getMessage()
    assert getattr(said, "webhook_id", None) == "w-malformed-1"
    assert all("hunter2" not in r.getMessage() for r in caplog.records)
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    assert metric(webhook_service, COUNTER, outcome="malformed") == 1
    assert metric(webhook_service, COUNTER, outcome="refused") == 0


def test_a_forged_delivery_is_still_counted_as_refused_and_logged_by_its_delivery_id(
    webhook_service: LiveService,  # noqa: F811 (the fixture)
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = b'{"event": {"id": "E1", "event_type": "incident.triggered", "data": {}}}'
    headers = {
        "X-PagerDuty-Signature": PagerDutyEmulator.sign(body, "not-the-secret"),
        "X-Webhook-Id": "w-forged",
    }
    with caplog.at_level("WARNING", logger="handlers.pagerduty_webhooks"):
        answer = webhook_service.post("/pagerduty/webhooks", content=body, headers=headers)

    assert answer.status_code == 401
    assert metric(webhook_service, COUNTER, outcome="refused") == 1
    assert metric(webhook_service, COUNTER, outcome="malformed") == 0
    # During a secret rotation, PagerDuty's delivery log is matched by this id.
    [said] = [r for r in caplog.records if "bad or missing signature" in r.getMessage()]
    assert "'w-forged'" in said.getMessage() and getattr(said, "webhook_id", None) == "w-forged"
