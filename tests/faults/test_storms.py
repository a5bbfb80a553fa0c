"""Storms under faults: the database going away, two instances sharing one database.

"PostgreSQL restarted" is simulated per test database, so that other test runs
on the same cluster are not disturbed: every connection to the database is
terminated and new ones are refused for a few seconds, which is what the
service sees during a restart or a failover.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bot.config import Config
from bot.incidents.models import Incident, IncidentEvent
from bot.outbox.models import Delivery
from bot.settings import Settings
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.conftest import TOPIC_ARN, _admin_url
from tests.support import LiveService, wait_for

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)


def storm(signer: SnsSigner, *, alarms: int, transitions: int) -> list[bytes]:
    """Flapping alarms, each starting in ALARM; every message signed like SNS."""
    bodies = []
    for step in range(transitions):
        for n in range(alarms):
            state = "ALARM" if step % 2 == 0 else "OK"
            message = alarm_message(
                name=f"prod-storm-{n}", state=state, at=T0 + timedelta(seconds=10 * step + n)
            )
            bodies.append(body(signer.notification(message, topic_arn=TOPIC_ARN)))
    return bodies


SNS = {"x-amz-sns-topic-arn": TOPIC_ARN}  # the header SNS sends with each message


def deliver_like_sns(urls: list[str], bodies: list[bytes], *, deadline_s: float = 120) -> None:
    """Post each message until it is accepted, as SNS retries a 5xx or a timeout."""
    end = time.monotonic() + deadline_s
    with httpx.Client(timeout=10) as client:
        for n, raw in enumerate(bodies):
            while True:
                try:
                    if (
                        client.post(
                            urls[n % len(urls)] + "/sns", content=raw, headers=SNS
                        ).status_code
                        == 200
                    ):
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < end, "SNS would have given up"
                time.sleep(0.2)


def settled(service: LiveService) -> bool:
    with service.runtime.sessions() as db:
        return db.scalar(sa.select(sa.func.count()).where(Delivery.status == "pending")) == 0


def assert_exactly_once(
    service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator, alarms: int
) -> None:
    with service.runtime.sessions() as db:
        incidents = db.scalars(sa.select(Incident)).all()
        dead = db.scalars(sa.select(Delivery).where(Delivery.status == "dead")).all()
        late = set(
            db.scalars(
                sa.select(IncidentEvent.incident_id).where(IncidentEvent.kind == "late_transition")
            )
        )
    assert dead == []
    assert len(incidents) >= alarms
    posted = Counter(m.text.split(" ")[2] for m in slack.channel_messages("C0PRODALERTS"))
    per_alarm = Counter(i.alarm_name for i in incidents)
    assert posted == per_alarm  # one Slack message per incident, never two
    for incident in incidents:
        # Paged once; not at all when opened by an ALARM older than the OK recorded
        # before it (shuffled delivery), which its timeline calls late.
        unpaged = not incident.paged and incident.id in late
        assert len(pagerduty.incidents_for(incident.dedup_key)) == (0 if unpaged else 1)


def test_database_restart_mid_storm(
    service: LiveService,
    database_url: str,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a server restart is a PostgreSQL event")
    name = make_url(database_url).database
    admin = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")

    def restart() -> None:
        time.sleep(1.0)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": name},
            )
        time.sleep(3.0)
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    outage = threading.Thread(target=restart)
    outage.start()
    try:
        deliver_like_sns([service.url], storm(sns_signer, alarms=10, transitions=6))
    finally:
        outage.join()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()
    wait_for(lambda: settled(service), timeout_s=120, interval_s=0.5)
    assert_exactly_once(service, slack, pagerduty, alarms=10)


def test_two_instances_share_one_database(
    settings: Settings,
    config: Config,
    database_url: str,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several instances need PostgreSQL; SQLite is the single-instance default")
    one, two = make_service(settings, config), make_service(settings, config)
    slack.faults.fail_next(5, status=429, retry_after_s=1, calls=("chat.",))
    bodies = storm(sns_signer, alarms=12, transitions=4)
    random.Random(7).shuffle(bodies)  # the two instances see transitions in any order
    deliver_like_sns([one.url, two.url], bodies)
    wait_for(lambda: settled(one), timeout_s=120, interval_s=0.5)
    assert_exactly_once(one, slack, pagerduty, alarms=12)
