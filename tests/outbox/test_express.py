"""A page, or a click's update of a posted message, claimed in the transaction that records
it and sent right after its commit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bot.alarms.service import Inbound, receive
from bot.clock import ManualClock
from bot.observability.metrics import AT_ONCE_OUTCOMES, Metrics
from bot.outbox import service as outbox
from bot.outbox.models import BULK, PAGERDUTY_EVENT, PERSON, SENT, SLACK_MESSAGE, Delivery
from bot.outbox.pacing import SLACK_UPDATES, Pacer
from bot.outbox.results import Job, Result, Sent
from bot.outbox.worker import OutboxWorker
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from tests.conftest import TOPIC_ARN
from tests.support import LiveService, statements_sent, wait_for

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
ROUTING_KEY_ENV = "PD_KEY_PROD"  # the prod route's, in tests/conftest.py


def pages(db: sa.orm.Session) -> list[Delivery]:
    return list(db.scalars(sa.select(Delivery).where(Delivery.kind == PAGERDUTY_EVENT)))


def statuses(service: LiveService) -> list[tuple[str, int]]:
    with service.runtime.sessions() as db:
        return [(p.status, p.attempts) for p in pages(db)]


def record_alarm(db: sa.orm.Session, service: LiveService, name: str) -> None:
    message = alarm_message(name=name, state="ALARM", at=T0)
    inbound = Inbound(message_id=f"m-{name}", via="https", body=message, topic_arn=TOPIC_ARN)
    receive(db, inbound=inbound, config=service.runtime.config, now=service.runtime.clock.now())


def test_a_page_is_claimed_before_its_commit_and_sent_right_after(
    service: LiveService, pagerduty: PagerDutyEmulator
) -> None:
    runtime = service.runtime
    with runtime.sessions() as db:
        record_alarm(db, service, "prod-api-5xx")
        db.flush()
        [page] = pages(db)
        # Claimed by this process's worker in the very transaction that adds it:
        # no other instance can take it, and nothing needs to look for it.
        assert page.claimed_by == runtime.outbox.instance_id
        assert page.attempts == 1
        db.commit()

    wait_for(lambda: statuses(service) == [(SENT, 1)])
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]


def test_a_page_waits_its_turn_behind_an_earlier_event_or_a_paused_routing_key(
    service: LiveService,
) -> None:
    runtime = service.runtime
    later = runtime.clock.now() + timedelta(minutes=5)
    with runtime.sessions() as db:
        now = runtime.clock.now()
        outbox.pagerduty_event(
            db,
            routing_key_env=ROUTING_KEY_ENV,
            dedup_key="k-behind",
            action="resolve",
            body={},
            now=now,
            not_before=later,
        )
        outbox.pagerduty_event(
            db,
            routing_key_env=ROUTING_KEY_ENV,
            dedup_key="k-behind",
            action="trigger",
            body={},
            now=now,
        )
        runtime.outbox.pacer.pause(outbox.pagerduty_target(ROUTING_KEY_ENV), 60)
        outbox.pagerduty_event(
            db,
            routing_key_env=ROUTING_KEY_ENV,
            dedup_key="k-paused",
            action="trigger",
            body={},
            now=now,
        )
        db.flush()
        assert [(p.payload["dedup_key"], p.claimed_by) for p in pages(db)] == [
            ("k-behind", None),
            ("k-behind", None),
            ("k-paused", None),
        ]
        db.rollback()


def test_a_page_claimed_by_a_process_that_stops_goes_out_once_its_lease_ends(
    service: LiveService, pagerduty: PagerDutyEmulator
) -> None:
    runtime = service.runtime
    with runtime.sessions() as db:
        record_alarm(db, service, "prod-db-cpu")
        db.flush()
        # The process stops between the claim and the commit: nothing sends the page now.
        runtime.outbox.stop()
        db.commit()
    assert pagerduty.events == []

    lease_s = runtime.config.delivery.lease_s
    clock = ManualClock(runtime.clock.now() + timedelta(seconds=lease_s + 1))
    other = OutboxWorker(
        sessions=runtime.sessions,
        senders=runtime.outbox.senders,
        pacer=runtime.outbox.pacer,
        settings=runtime.config.delivery,
        clock=clock,
        instance_id="another-instance",
        metrics=runtime.metrics,
    )
    other.start()
    try:
        # Claimed twice (the second claim by the other instance), sent once.
        wait_for(lambda: statuses(service) == [(SENT, 2)])
    finally:
        other.stop()
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]
    assert len(pagerduty.incidents) == 1


# -- a click's effect on a posted message --------------------------------------------------


def posted_message(db: sa.orm.Session, now: datetime, key: str = "incident:1") -> None:
    message = outbox.slack_message(db, key=key, channel="#alerts", now=now)
    message.ts, message.channel_id = "1700000000.000100", "C0ALERTS"
    db.flush()


def update(
    db: sa.orm.Session, text: str, now: datetime, *, clicked: bool = True, key: str = "incident:1"
) -> None:
    """An update of the message under `key`: a click's (PERSON) or a plain one."""
    outbox.post_or_update(
        db,
        key=key,
        channel="#alerts",
        message={"text": text},
        now=now,
        priority=PERSON if clicked else BULK,
    )
    db.flush()


def updates(db: sa.orm.Session) -> list[tuple[str, int, str | None]]:
    rows = db.scalars(
        sa.select(Delivery).where(Delivery.kind == SLACK_MESSAGE).order_by(Delivery.id)
    )
    return [(r.payload["text"], r.priority, r.claimed_by) for r in rows]


@contextmanager
def posted(service: LiveService) -> Iterator[tuple[sa.orm.Session, datetime]]:
    """A transaction in which the message under incident:1 is posted; rolled back after."""
    with service.runtime.sessions() as db:
        now = service.runtime.clock.now()
        posted_message(db, now)
        yield db, now
        db.rollback()


def test_a_click_s_update_of_a_posted_message_is_claimed_before_its_commit(
    service: LiveService,
) -> None:
    me = service.runtime.outbox.instance_id
    with posted(service) as (db, now):
        update(db, "acked", now)
        assert updates(db) == [("acked", PERSON, me)]

    with posted(service) as (db, now):
        # The transaction had already queued a plain update of the message: the
        # click's render replaces it and that row is the one claimed.
        update(db, "plain", now, clicked=False)
        update(db, "acked", now)
        assert updates(db) == [("acked", PERSON, me)]


def test_a_click_s_update_waits_its_turn_behind_another_on_its_way_or_a_paused_tier(
    service: LiveService,
) -> None:
    me = service.runtime.outbox.instance_id
    with posted(service) as (db, now):
        # An update already claimed (on the wire): the click's waits for the worker.
        update(db, "first", now)
        update(db, "second", now)
        assert updates(db) == [("first", PERSON, me), ("second", PERSON, None)]

    with posted(service) as (db, now):
        # An update waiting out its backoff after a failed attempt keeps waiting.
        update(db, "plain", now, clicked=False)
        db.execute(sa.update(Delivery).values(not_before=now + timedelta(seconds=30)))
        update(db, "acked", now)
        assert updates(db) == [("acked", PERSON, None)]

    service.runtime.outbox.pacer.pause(SLACK_UPDATES, 60)
    registry = service.runtime.metrics.registry
    paced = {"outcome": "paced"}
    offered = registry.get_sample_value("opsbot_outbox_at_once_total", paced)
    with posted(service) as (db, now):
        update(db, "acked", now)
        assert updates(db) == [("acked", PERSON, None)]
        assert registry.get_sample_value("opsbot_outbox_at_once_total", paced) == offered + 1
        # A message not yet posted is the worker's to post (it may thread or find it).
        update(db, "new", now, key="incident:2")
        assert updates(db)[-1] == ("new", PERSON, None)


def test_a_click_s_update_reads_what_is_owed_once_and_lifts_only_what_waits_lower(
    service: LiveService,
) -> None:
    engine = service.runtime.engine
    with posted(service) as (db, now), statements_sent(engine) as sent:
        update(db, "acked", now)

    on_deliveries = [s for s, _ in sent if "DELIVERIES" in s]
    # One read of what is owed, no count, no lift (nothing waits), then the row, claimed.
    assert [s.split()[0] for s in on_deliveries] == ["SELECT", "INSERT"]
    assert "COUNT(" not in on_deliveries[0]

    with posted(service) as (db, now):
        # A plain update on the wire: the click's waits behind it, which goes at its pace.
        update(db, "plain", now, clicked=False)
        db.execute(sa.update(Delivery).values(claimed_by="elsewhere"))
        with statements_sent(engine) as sent:
            update(db, "acked", now)
        assert updates(db) == [("plain", PERSON, "elsewhere"), ("acked", PERSON, None)]
    assert len([s for s, _ in sent if s.startswith("UPDATE DELIVERIES SET PRIORITY")]) == 1


def test_nothing_is_claimed_at_once_while_every_sender_is_busy(service: LiveService) -> None:
    runtime = service.runtime
    gate = threading.Event()

    def slow(job: Job) -> Result:
        gate.wait(30)
        return Sent()

    settings = runtime.config.delivery.model_copy(update={"workers": 1})
    metrics = Metrics()  # this worker's offers only (opsbot_outbox_at_once)

    def offers() -> dict[str, float]:
        return {
            outcome: metrics.registry.get_sample_value(
                "opsbot_outbox_at_once_total", {"outcome": outcome}
            )
            or 0.0
            for outcome in AT_ONCE_OUTCOMES
        }

    worker = OutboxWorker(
        sessions=runtime.sessions,
        senders={SLACK_MESSAGE: slow},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=settings,
        instance_id="one-sender",
        metrics=metrics,
    )
    worker.start()
    try:
        now = runtime.clock.now()
        reservation = worker.reserve(
            kind=SLACK_MESSAGE, target="slack:#alerts", order_key="slack:a", now=now
        )
        assert reservation is not None
        job = Job(0, SLACK_MESSAGE, "slack:#alerts", {"text": "a"}, 1, None)
        worker.send_claimed([(job, "slack:a", reservation)])  # the only sender is busy with it
        # Claimed now, it would wait behind that one with its share of the pace spent.
        assert (
            worker.reserve(kind=SLACK_MESSAGE, target="slack:#alerts", order_key="slack:b", now=now)
            is None
        )
        assert (
            worker.reserve(kind=SLACK_MESSAGE, target="slack:#alerts", order_key="slack:a", now=now)
            is None
        )
        assert offers() == {"leased": 1, "unused": 0, "behind": 1, "busy": 1, "paced": 0}
        gate.set()
        wait_for(
            lambda: worker.reserve(
                kind=SLACK_MESSAGE, target="slack:#alerts", order_key="slack:b", now=now
            )
        )
    finally:
        gate.set()
        worker.stop()
