"""The Prometheus metrics: they move with alarms, clicks and deliveries, on their own port."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from bot.clock import ManualClock
from bot.db.engine import make_engine, make_sessionmaker
from bot.incidents import render
from bot.observability.exporter import MetricsPortUnavailable, serve_metrics
from bot.observability.metrics import Metrics
from bot.observability.outbox_gauges import OutboxGauges
from bot.outbox import service as outbox
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TOPIC_ARN
from tests.incidents.helpers import click, message_text, page
from tests.support import LiveService, wait_for


def value(service: LiveService, name: str, **labels: str) -> float:
    found = service.runtime.metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_an_alarm_and_a_click_move_the_metrics(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    assert value(service, "opsbot_alarm_notifications_total", via="https", outcome="new") == 0
    assert value(service, "opsbot_alarm_to_page_seconds_count") == 0

    incident_id, message = page(service, sns_signer, slack, pagerduty)

    assert value(service, "opsbot_alarm_notifications_total", via="https", outcome="new") == 1
    wait_for(lambda: value(service, "opsbot_alarm_to_page_seconds_count") == 1)
    assert value(service, "opsbot_deliveries_total", target="pagerduty", outcome="ok") == 1
    assert value(service, "opsbot_deliveries_total", target="slack", outcome="ok") >= 1
    assert value(service, "opsbot_slack_auth_ok") == 1

    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))
    assert value(service, "opsbot_slack_ack_seconds_count") == 1
    wait_for(lambda: value(service, "opsbot_click_to_effect_seconds_count") == 1)
    assert value(service, "opsbot_deliveries_total", target="pagerduty_rest", outcome="ok") == 1


def test_a_refused_notification_is_counted_and_records_nothing(service: LiveService) -> None:
    answer = service.post(
        "/sns", content=b'{"Type": "Notification"', headers={"x-amz-sns-topic-arn": TOPIC_ARN}
    )
    assert answer.status_code == 400
    assert value(service, "opsbot_alarm_notifications_total", via="https", outcome="refused") == 1
    assert value(service, "opsbot_alarm_notifications_total", via="https", outcome="new") == 0
    with service.runtime.sessions() as db:
        assert db.scalar(sa.text("SELECT count(*) FROM received_messages")) == 0


def test_metrics_are_served_on_their_own_port_and_not_on_the_main_one(
    service: LiveService,
) -> None:
    exporter = serve_metrics(service.runtime.metrics.registry, host="127.0.0.1", port=0)
    try:
        text = httpx.get(exporter.url, timeout=10).text
        assert exporter.url.endswith("/metrics")
        for name in (
            "opsbot_alarm_notifications_total",
            "opsbot_outbox_pending",
            "opsbot_outbox_oldest_pending_seconds",
            "opsbot_deliveries_total",
            "opsbot_alarm_to_page_seconds_bucket",
            "opsbot_slack_ack_seconds_bucket",
            "opsbot_click_to_effect_seconds_bucket",
            "opsbot_slack_auth_ok",
            "opsbot_leader",
            "opsbot_build_info",
            "opsbot_config_info",
        ):
            assert name in text, name
        assert 'opsbot_outbox_pending{target="pagerduty"} 0.0' in text
        assert service.get("/metrics").status_code == 404

        with pytest.raises(MetricsPortUnavailable, match="already in use"):
            serve_metrics(Metrics().registry, host="127.0.0.1", port=exporter.port)
    finally:
        exporter.stop()


def test_two_runtimes_in_one_process_count_apart() -> None:
    one, two = Metrics(), Metrics()
    one.delivery("pagerduty.event", "dead")
    assert (
        one.registry.get_sample_value(
            "opsbot_deliveries_total", {"target": "pagerduty", "outcome": "dead"}
        )
        == 1
    )
    assert (
        two.registry.get_sample_value(
            "opsbot_deliveries_total", {"target": "pagerduty", "outcome": "dead"}
        )
        == 0
    )


def test_the_outbox_gauges_ask_the_database_once_per_cache_period(database_url: str) -> None:
    """A burst of scrapes (a storm, several scrapers) costs one grouped query per period."""
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    clock = ManualClock(now)
    writer = make_engine(database_url)
    with make_sessionmaker(writer)() as db:
        for n in range(3):
            outbox.pagerduty_event(
                db,
                routing_key_env="PD_KEY_PROD",
                dedup_key=f"k{n}",
                action="trigger",
                body={"payload": {}},
                now=now - timedelta(seconds=90),
            )
        # Held back on purpose (the reopen window): pending, but not late.
        outbox.pagerduty_event(
            db,
            routing_key_env="PD_KEY_PROD",
            dedup_key="held",
            action="resolve",
            body={},
            now=now,
            not_before=now + timedelta(minutes=5),
        )
        outbox.post_or_update(
            db, key="m1", channel="C0ALERTS", message={"text": "x"}, now=now - timedelta(seconds=5)
        )
        db.commit()
    writer.dispose()

    engine = make_engine(database_url)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    ticks = [0.0]
    gauges = OutboxGauges(engine, clock=clock, cache_s=30.0, monotonic=lambda: ticks[0])
    metrics = Metrics()
    metrics.registry.register(gauges)
    assert statements == []  # registering asks nothing

    for _ in range(25):
        metrics.registry.get_sample_value("opsbot_outbox_pending", {"target": "pagerduty"})
    selects = [s for s in statements if "deliveries" in s]
    assert len(selects) == 1

    def sample(name: str, target: str) -> float | None:
        return metrics.registry.get_sample_value(name, {"target": target})

    assert sample("opsbot_outbox_pending", "pagerduty") == 4
    assert sample("opsbot_outbox_oldest_pending_seconds", "pagerduty") == 90
    assert sample("opsbot_outbox_pending", "slack") == 1
    assert sample("opsbot_outbox_oldest_pending_seconds", "slack") == 5
    assert sample("opsbot_outbox_pending", "slack_response") == 0

    ticks[0] = 31.0
    clock.advance(seconds=10)
    assert sample("opsbot_outbox_oldest_pending_seconds", "pagerduty") == 100
    assert len([s for s in statements if "deliveries" in s]) == 2
    gauges.close()


def test_the_page_histogram_counts_alarm_pages_only(
    settings: Any, config: Any, make_service: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    service = make_service(settings, config)
    from tests.incidents.helpers import command, responses_to

    url = slack.response_url()
    command(service, "/incident", "declare Checkout is down --route prod", response_url=url)
    wait_for(lambda: responses_to(slack, url))
    wait_for(lambda: value(service, "opsbot_deliveries_total", target="pagerduty", outcome="ok"))
    assert value(service, "opsbot_alarm_to_page_seconds_count") == 0
