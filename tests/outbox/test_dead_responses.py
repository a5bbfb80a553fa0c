"""An answer through a response_url that Slack refuses for good (it expired after 30
minutes, or was used up) is a user's lost ephemeral answer: counted and shown apart,
never in `opsbot_deliveries_dead`, the figure that pages on-call."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from bot.config import parse_config
from bot.outbox import service as outbox
from bot.outbox.models import DEAD, SLACK_MESSAGE, SLACK_RESPONSE, Delivery
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import outbox_idle, send_alarm
from tests.support import LiveService, RecordingServer, metric, wait_for


def dead_kinds(service: LiveService) -> list[str]:
    with service.runtime.sessions() as db:
        return sorted(db.scalars(sa.select(Delivery.kind).where(Delivery.status == DEAD)))


def test_an_expired_response_url_is_counted_apart_from_the_deaths_that_page(
    settings: Settings,
    slack: SlackEmulator,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> None:
    data = json.loads(json.dumps(TEST_CONFIG))
    data["alarm_routes"][-1]["channel"] = "C0MISSING"  # Slack refuses it: dead, and paged
    service = make_service(settings.model_copy(update={"emf_interval_s": 0.0}), parse_config(data))
    expired = RecordingServer(status=404, body=b"expired_url")
    try:
        send_alarm(service, sns_signer, "other-disk-full", "ALARM")
        with service.runtime.sessions() as db:
            outbox.respond(
                db,
                response_url=f"{expired.url}/commands/T0/1/expired",
                body={"response_type": "ephemeral", "text": "deployed"},
                order_key="answer:expired",
                now=datetime.now(UTC),
            )
            db.commit()
        wait_for(lambda: dead_kinds(service) == sorted([SLACK_MESSAGE, SLACK_RESPONSE]))
        wait_for(lambda: outbox_idle(service))
    finally:
        expired.stop()
    assert len(expired.requests) == 1  # refused for good: not tried again

    # Prometheus: each under its own target, as before.
    assert metric(service, "opsbot_deliveries_total", target="slack", outcome="dead") == 1
    assert metric(service, "opsbot_deliveries_total", target="slack_response", outcome="dead") == 1
    # EMF: only the message counts in the figure the deliveries-dead alarm pages on.
    emitted: list[str] = []
    monitor = service.runtime.ops_monitor
    assert monitor is not None
    monitor.emit = emitted.append
    monitor.write_emf(datetime.now(UTC))
    plain = json.loads(emitted[0])
    assert plain["opsbot_deliveries_dead"] == 1
    assert plain["opsbot_slack_responses_dead"] == 1
