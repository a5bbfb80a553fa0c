"""A 429 from PagerDuty (REST or Events API) is not sent again 0.1 s later by the
client, nor logged by it as an error: it goes back to the outbox, which holds the
token's or the routing key's lane for as long as PagerDuty asked, and tries the
call after that."""

from __future__ import annotations

import logging

import pagerduty as pagerduty_client
import pytest

from bot.adapters.pagerduty import events_client, rest_client
from bot.incidents import render
from bot.outbox.models import PAGERDUTY_REST
from bot.pagerduty.errors import PagerDutyUnavailable
from bot.pagerduty.rest import PagerDutyRest
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from sandbox.tls import TestCA
from tests.conftest import PD_API_TOKEN, PD_ROUTING_KEY
from tests.incidents.helpers import click, page, pd_calls
from tests.outbox.test_lanes import HOUR_S, pending
from tests.support import LiveService, wait_for


def test_the_rest_client_hands_a_429_back_without_sending_it_again(
    pagerduty: PagerDutyEmulator, test_ca: TestCA, caplog: pytest.LogCaptureFixture
) -> None:
    client = rest_client(
        PD_API_TOKEN,
        base_url=pagerduty.url,
        tls=test_ca.client_context(),
        timeout_s=1.0,
        default_from=None,
    )
    pagerduty.faults.fail_next(1, status=429, retry_after_s=30, calls=("/incidents/",))

    with pytest.raises(PagerDutyUnavailable) as raised:
        PagerDutyRest(client).update_incident(
            "PINC1", from_email="alice@example.com", change={"status": "acknowledged"}
        )

    assert raised.value.retry_after_s == 30.0
    assert pd_calls(pagerduty, "PUT") == []  # a resend would have been answered
    # The outbox says what it does with the 429; the client says nothing louder.
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_the_events_client_hands_a_429_back_without_sending_it_again(
    pagerduty: PagerDutyEmulator, test_ca: TestCA, caplog: pytest.LogCaptureFixture
) -> None:
    client = events_client(
        PD_ROUTING_KEY, base_url=pagerduty.url, tls=test_ca.client_context(), timeout_s=1.0
    )
    pagerduty.faults.fail_next(1, status=429, retry_after_s=30, calls=("/v2/enqueue",))

    with pytest.raises(pagerduty_client.HttpError) as raised:
        client.send_event(
            "trigger",
            dedup_key="opsbot-429",
            payload={"summary": "CPU high", "source": "opsbot", "severity": "critical"},
        )

    assert raised.value.response.status_code == 429
    assert pagerduty.events_for("opsbot-429") == []  # a resend would have been taken
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_one_429_holds_a_persons_call_for_as_long_as_pagerduty_asked(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    pagerduty.faults.fail_next(1, status=429, retry_after_s=HOUR_S, calls=("/incidents/",))

    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())

    waiting = wait_for(lambda: service.runtime.outbox.pacer.waiting().get("pd:rest"))
    assert waiting > HOUR_S / 2
    assert pd_calls(pagerduty, "PUT") == []  # not acknowledged by a resend 0.1 s later
    assert pending(service, PAGERDUTY_REST) == 1  # kept for after the hour
