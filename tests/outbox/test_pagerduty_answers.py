"""What an Events API answer makes of a page: a 2xx is taken whatever its body, a 3xx
(a proxy's) or a 408 goes again, and only a refusal (4xx) abandons it."""

from __future__ import annotations

from typing import Any

import pytest

from bot.adapters.pagerduty import events_client
from bot.outbox.models import PAGERDUTY_EVENT
from bot.outbox.pagerduty_sender import PagerDutySender
from bot.outbox.results import Dead, Job, Retry, Sent
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.tls import TestCA
from tests.conftest import PD_ROUTING_KEY
from tests.support import wait_for

ENQUEUE = ("/v2/enqueue",)


def send(pagerduty: PagerDutyEmulator, test_ca: TestCA, action: str = "trigger") -> Any:
    client = events_client(
        PD_ROUTING_KEY, base_url=pagerduty.url, tls=test_ca.client_context(), timeout_s=5.0
    )
    payload: dict[str, Any] = {"action": action, "dedup_key": "k1", "routing_key_env": "PD_KEY"}
    if action == "trigger":
        payload["payload"] = {"summary": "s", "source": "x", "severity": "critical"}
    job = Job(41, PAGERDUTY_EVENT, "pd:PD_KEY", payload, 1, None)
    return PagerDutySender(lambda _env: client).send(job)


@pytest.mark.parametrize("status", [200, 202])
def test_an_event_taken_with_an_unexpected_body_is_sent_not_abandoned(
    pagerduty: PagerDutyEmulator,
    test_ca: TestCA,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    # Taken, and answered with a body that names no dedup_key (a proxy's, a change at
    # PagerDuty): the client raises, yet the page is in.
    pagerduty.faults.fail_but_do_next(1, status=status, done_after_s=0.0, calls=ENQUEUE)

    assert isinstance(send(pagerduty, test_ca), Sent)

    wait_for(lambda: pagerduty.incidents_for("k1"))
    [warning] = [r for r in caplog.records if r.name == "bot.outbox.pagerduty_sender"]
    assert warning.levelname == "WARNING"
    assert "delivery 41" in warning.getMessage() and "unexpected body" in warning.getMessage()
    assert PD_ROUTING_KEY not in caplog.text


@pytest.mark.parametrize("status", [301, 302, 307, 408])
def test_a_redirect_or_a_request_timeout_is_tried_again(
    pagerduty: PagerDutyEmulator, test_ca: TestCA, status: int
) -> None:
    pagerduty.faults.fail_next(1, status=status, calls=ENQUEUE)

    result = send(pagerduty, test_ca, "resolve")

    assert isinstance(result, Retry)
    assert result.error == f"PagerDuty answered {status}"
    assert not result.ambiguous  # answered: nothing of it is still on its way
    assert isinstance(send(pagerduty, test_ca, "resolve"), Sent)


def test_a_refused_event_is_abandoned(pagerduty: PagerDutyEmulator, test_ca: TestCA) -> None:
    pagerduty.faults.fail_next(1, status=400, calls=ENQUEUE)

    result = send(pagerduty, test_ca)

    assert isinstance(result, Dead)
    assert result.error.startswith("PagerDuty refused the event (400)")
    assert pagerduty.incidents_for("k1") == []
