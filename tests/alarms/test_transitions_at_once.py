"""Two transitions of one alarm applied by two transactions at once take turns.

Two instances, the SQS thread and the HTTPS writer of one instance, or a sweep of a
peer's pending rows can apply an alarm's ALARM and its OK in the same instant. With no
incident open, there is no incident row to lock: without a lock of their own, one
would open an incident and page while the other, not seeing it, kept the OK apart,
and the incident would stay open, paged and escalating after the alarm recovered.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bot.alarms.intake import AlarmIntake
from bot.alarms.service import Inbound, receive
from bot.clock import SystemClock
from bot.config import Config
from bot.db.engine import make_sessionmaker
from bot.incidents.models import Incident
from bot.observability.metrics import Metrics
from bot.outbox.models import PAGERDUTY_EVENT, Delivery
from tests.alarms.test_late_and_flapping import waiting_on_a_lock
from tests.conftest import TOPIC_ARN
from tests.support import wait_for

ARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
T1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # past: a later stamp than its receipt is corrected


# SQLite lets one writer at a time in: there is no race to lose.
POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def inbound(
    message_id: str, state: str, old: str, at: datetime, *, name: str = "prod-api-5xx"
) -> Inbound:
    body = {
        "AlarmName": name,
        "AlarmArn": ARN + name,
        "NewStateValue": state,
        "OldStateValue": old,
        "NewStateReason": f"{old} to {state}",
        "StateChangeTime": at.isoformat(),
    }
    return Inbound(message_id=message_id, via="https", body=json.dumps(body), topic_arn=TOPIC_ARN)


# When the transactions apply what they receive.
NOW = T1 + timedelta(minutes=2)


def applied(
    sessions: sessionmaker[Session], message: Inbound, config: Config, now: datetime = NOW
) -> str:
    with sessions() as db_session:
        outcome = receive(db_session, inbound=message, config=config, now=now)
        db_session.commit()
        return outcome


def at_once(engine: sa.Engine, config: Config, first: Inbound, second: Inbound) -> tuple[str, str]:
    """`first` applied and not committed yet when `second` is applied beside it; then
    `first` commits. Their outcomes."""
    sessions = make_sessionmaker(engine)
    # The session closes first on the way out: a failure here rolls it back, and the
    # second transaction, free to go on, ends before the pool is waited for.
    with ThreadPoolExecutor(1) as pool, sessions() as holding:
        first_outcome = receive(holding, inbound=first, config=config, now=NOW)
        racing = pool.submit(applied, sessions, second, config)
        # The second waits for the first (or, unserialized, is done without it).
        wait_for(lambda: racing.done() or waiting_on_a_lock(engine))
        holding.commit()
        return first_outcome, racing.result(30)


def incidents_and_pages(engine: sa.Engine) -> tuple[list[tuple[str, str | None]], list[str]]:
    with make_sessionmaker(engine)() as db_session:
        incidents = db_session.scalars(sa.select(Incident).order_by(Incident.id))
        pages = db_session.scalars(
            sa.select(Delivery).where(Delivery.kind == PAGERDUTY_EVENT).order_by(Delivery.id)
        )
        return [(i.status, i.alarm_state) for i in incidents], [p.payload["action"] for p in pages]


@POSTGRESQL
@pytest.mark.parametrize("alarm_first", [True, False], ids=["alarm-first", "ok-first"])
def test_a_new_alarm_s_alarm_and_ok_applied_at_once_leave_it_resolved(
    engine: sa.Engine, config: Config, alarm_first: bool
) -> None:
    alarm = inbound("m-alarm", "ALARM", "OK", T1)
    ok = inbound("m-ok", "OK", "ALARM", T1 + timedelta(minutes=1))

    first, second = at_once(engine, config, *((alarm, ok) if alarm_first else (ok, alarm)))

    incidents, pages = incidents_and_pages(engine)
    assert incidents == [("resolved", "OK")]
    if alarm_first:
        assert pages == ["trigger", "resolve"]
        assert (first, second) == (
            "incident 1 opened: ALARM, paged",
            "incident 1 updated: OK, resolved",
        )
    else:
        # The ALARM is older than the OK applied before it: late, so nobody is paged.
        assert pages == []
        assert first == "OK with no open incident: nothing to resolve"
        assert second.startswith("incident 1 opened: ALARM, arrived late: not paged; then OK of ")


@POSTGRESQL
def test_an_alarm_and_its_ok_at_once_after_the_last_incident_resolved_leave_it_resolved(
    engine: sa.Engine, config: Config
) -> None:
    """The alarm's last incident is resolved, past the reopen window: the ALARM locks its
    row but opens another incident, which the OK waiting on that row would not see."""
    sessions = make_sessionmaker(engine)
    before = T1 - timedelta(hours=2)
    applied(sessions, inbound("m-1", "ALARM", "OK", before), config, now=before)
    ok_before = before + timedelta(minutes=1)
    applied(sessions, inbound("m-2", "OK", "ALARM", ok_before), config, now=ok_before)

    alarm = inbound("m-alarm", "ALARM", "OK", T1)
    ok = inbound("m-ok", "OK", "ALARM", T1 + timedelta(minutes=1))
    first, second = at_once(engine, config, alarm, ok)

    assert (first, second) == (
        "incident 2 opened: ALARM, paged",
        "incident 2 updated: OK, resolved",
    )
    incidents, _ = incidents_and_pages(engine)
    assert incidents == [("resolved", "OK"), ("resolved", "OK")]


@POSTGRESQL
def test_two_batches_taking_two_new_alarms_in_opposite_orders_are_both_applied(
    engine: sa.Engine, config: Config
) -> None:
    """Each batch takes its first alarm's lock, then waits for the other's: PostgreSQL
    breaks the cycle by failing one, and the intake applies that one again."""
    intake = AlarmIntake(
        sessions=make_sessionmaker(engine), config=config, clock=SystemClock(), metrics=Metrics()
    )
    recovered = T1 + timedelta(minutes=1)
    a = [
        inbound("m-api", "ALARM", "OK", T1),
        inbound("m-web-ok", "OK", "ALARM", recovered, name="prod-web-5xx"),
    ]
    b = [
        inbound("m-web", "ALARM", "OK", T1, name="prod-web-5xx"),
        inbound("m-api-ok", "OK", "ALARM", recovered),
    ]
    # Each batch's first lock is held until the other batch holds its own first lock.
    both_locked = threading.Barrier(2, timeout=15)
    first_try = threading.local()

    def hold(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "pg_advisory_xact_lock" in statement and not getattr(first_try, "done", False):
            first_try.done = True
            both_locked.wait()

    sa.event.listen(engine, "after_cursor_execute", hold)
    try:
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(intake.record_batch, [a, b]))
    finally:
        sa.event.remove(engine, "after_cursor_execute", hold)

    assert not [o for batch in outcomes for o in batch if isinstance(o, BaseException)]
    with make_sessionmaker(engine)() as db_session:
        incidents = db_session.scalars(sa.select(Incident).order_by(Incident.alarm_name))
        assert [(i.alarm_name, i.status) for i in incidents] == [
            ("prod-api-5xx", "resolved"),
            ("prod-web-5xx", "resolved"),
        ]
