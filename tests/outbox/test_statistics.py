"""A backlog that appears at once, with statistics taken while nothing was pending.

On PostgreSQL such statistics give the worker's query for due work a plan that
reads every pending row for each one (seconds a pass with a few thousand
pending; docs/benchmarks.md). A slow pass has the table analyzed again, at most
once a minute. The threshold is zero here, so that every pass counts as slow
and the test does not depend on how fast this machine is.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from bot.config import DeliverySettings
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.outbox.models import PENDING, PERSON, SENT, SLACK_RESPONSE, Delivery
from bot.outbox.pacing import Pacer
from bot.outbox.results import Job, Result, Sent
from bot.outbox.worker import OutboxWorker

BACKLOG = 500


def _never(job: Job) -> Result:
    raise AssertionError("the pacer lets nothing through in this test")


def _rows(status: str, first: int, count: int, now: datetime) -> list[dict[str, object]]:
    return [
        {
            "kind": SLACK_RESPONSE,
            "target": "slack:response_url",
            "order_key": f"slack-response:{i}",
            "payload": {"url": f"https://hooks.example/{i}", "body": {"text": "ok"}},
            "priority": PERSON,
            "status": status,
            "attempts": 0,
            "version": 0,
            "not_before": now,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(first, first + count)
    ]


def _estimated_rows(engine: sa.Engine) -> float:
    with engine.connect() as connection:
        return float(
            connection.execute(
                sa.text("SELECT reltuples FROM pg_class WHERE relname = 'deliveries'")
            ).scalar_one()
        )


def _analyzed(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("opsbot_outbox_analyzed_total") or 0.0


def test_a_slow_pass_has_postgresql_take_the_statistics_again_once_a_minute(
    engine: sa.Engine,
) -> None:

    now = datetime.now(UTC)
    postgresql = engine.dialect.name == "postgresql"
    with engine.begin() as connection:
        connection.execute(sa.insert(Delivery), _rows(SENT, 0, 1, now))
    if postgresql:
        with engine.begin() as connection:  # statistics of a quiet outbox: nothing pending
            connection.exec_driver_sql("ANALYZE deliveries")
        assert _estimated_rows(engine) == 1
    with engine.begin() as connection:
        connection.execute(sa.insert(Delivery), _rows(PENDING, 1, BACKLOG, now))

    metrics = Metrics()
    worker = OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={SLACK_RESPONSE: _never},
        pacer=Pacer(lambda lane: (0.001, 0.0)),  # no token: nothing is claimed or sent
        settings=DeliverySettings(),
        metrics=metrics,
        slow_due_s=0.0,
    )
    worker.dispatch_due()
    if not postgresql:  # SQLite plans without such statistics: nothing to take again
        assert _analyzed(metrics) == 0
        return
    assert _analyzed(metrics) == 1
    assert _estimated_rows(engine) == 1 + BACKLOG

    with engine.begin() as connection:
        connection.execute(sa.insert(Delivery), _rows(PENDING, 1 + BACKLOG, BACKLOG, now))
    worker.dispatch_due()  # slow again within the minute: not again
    assert _analyzed(metrics) == 1


def test_a_pass_within_the_threshold_leaves_the_statistics_alone(engine: sa.Engine) -> None:

    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(sa.insert(Delivery), _rows(PENDING, 0, 10, now))
    metrics = Metrics()
    worker = OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={SLACK_RESPONSE: lambda job: Sent()},
        pacer=Pacer(lambda lane: (0.001, 0.0)),
        settings=DeliverySettings(),
        metrics=metrics,
        slow_due_s=3600.0,
    )
    worker.dispatch_due()
    assert _analyzed(metrics) == 0
