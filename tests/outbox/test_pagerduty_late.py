"""An Events API event whose answer was lost may still land: what its retry waits for."""

from __future__ import annotations

from typing import Any

import pytest

from bot.adapters.pagerduty import events_client
from bot.outbox.models import PAGERDUTY_EVENT
from bot.outbox.pagerduty_sender import PagerDutySender
from bot.outbox.results import Job, Retry
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.tls import TestCA
from tests.conftest import PD_ROUTING_KEY

TIMEOUT_S = 0.5


def sender(
    pagerduty: PagerDutyEmulator, test_ca: TestCA, url: str | None = None
) -> PagerDutySender:
    client = events_client(
        PD_ROUTING_KEY,
        base_url=url or pagerduty.url,
        tls=test_ca.client_context(),
        timeout_s=TIMEOUT_S,
    )
    return PagerDutySender(lambda _env: client)


def event(action: str) -> Job:
    payload: dict[str, Any] = {"action": action, "dedup_key": "k1", "routing_key_env": "PD_KEY"}
    if action == "trigger":
        payload["payload"] = {"summary": "s", "source": "x", "severity": "critical"}
    return Job(1, PAGERDUTY_EVENT, "pd:PD_KEY", payload, 2, None)


@pytest.mark.parametrize(("action", "waits"), [("resolve", True), ("trigger", False)])
def test_an_event_answered_too_late_waits_out_the_lease_unless_it_is_a_page(
    pagerduty: PagerDutyEmulator, test_ca: TestCA, action: str, waits: bool
) -> None:
    # The resolve may land after the client gave up: tried again at once, it could
    # land after the new page that follows it, and resolve that.
    pagerduty.faults.hang_next(1, seconds=3 * TIMEOUT_S, calls=("/v2/enqueue",))
    result = sender(pagerduty, test_ca).send(event(action))
    assert isinstance(result, Retry)
    assert result.ambiguous is waits


def test_an_event_that_could_not_connect_is_tried_again_without_waiting(
    pagerduty: PagerDutyEmulator, test_ca: TestCA
) -> None:
    result = sender(pagerduty, test_ca, url="https://127.0.0.1:9").send(event("resolve"))
    assert isinstance(result, Retry)
    assert not result.ambiguous
