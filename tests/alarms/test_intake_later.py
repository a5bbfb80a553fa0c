"""A storm is recorded first and applied after: nothing lost, nothing applied twice, in order.

Real databases (SQLite and PostgreSQL); each `AlarmIntake` below stands for a
process: a new one on the same database is a restart, two at once are two
instances.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.alarms.batch import GroupCommit
from bot.alarms.intake import RECORDED, AlarmIntake
from bot.alarms.models import PENDING, ReceivedMessage
from bot.alarms.service import Inbound
from bot.clock import SystemClock
from bot.config import parse_config
from bot.db.engine import make_sessionmaker
from bot.incidents.models import Incident, IncidentEvent
from bot.observability.metrics import Metrics
from bot.outbox.models import PAGERDUTY_EVENT, Delivery
from sandbox.alarms import alarm_message
from tests.conftest import TEST_CONFIG, TOPIC_ARN

POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
START = datetime.now(UTC) - timedelta(minutes=5)
# A flap within the reopen window reopens its incident and pages once.
CONFIG = {**TEST_CONFIG, "alarms": {**TEST_CONFIG["alarms"], "reopen_window_s": 300}}


def make_intake(engine: sa.Engine) -> AlarmIntake:
    return AlarmIntake(
        sessions=make_sessionmaker(engine),
        config=parse_config(CONFIG),
        clock=SystemClock(),
        metrics=Metrics(),
    )


def change(name: str, state: str, *, second: int, message_id: str | None = None) -> Inbound:
    old = "OK" if state == "ALARM" else "ALARM"
    return Inbound(
        message_id=message_id or f"m-{name}-{second}",
        via="https",
        body=alarm_message(
            name=name, state=state, old_state=old, at=START + timedelta(seconds=second)
        ),
        topic_arn=TOPIC_ARN,
    )


def storm(alarms: int) -> list[Inbound]:
    """Each alarm fires, recovers and fires again."""
    return [
        change(f"prod-svc{n}-5xx", state, second=second)
        for second, state in enumerate(("ALARM", "OK", "ALARM"))
        for n in range(alarms)
    ]


def outcomes(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.scalars(sa.select(ReceivedMessage.outcome).order_by(ReceivedMessage.id))
        )


def triggers(engine: sa.Engine) -> list[str]:
    """The dedup keys of the PagerDuty trigger events queued, one per page."""
    with engine.connect() as connection:
        payloads = connection.scalars(
            sa.select(Delivery.payload).where(Delivery.kind == PAGERDUTY_EVENT)
        ).all()
    return sorted(p["dedup_key"] for p in payloads if p["action"] == "trigger")


def paged_once_each(engine: sa.Engine, alarms: int) -> bool:
    """Every alarm paged, once: a flap within the reopen window does not page again."""
    pages = triggers(engine)
    return len(pages) == len(set(pages)) == alarms


def states(engine: sa.Engine) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(Incident.alarm_name, Incident.status, Incident.alarm_state)
        ).all()
    return {name: (status, state) for name, status, state in rows}


def apply_all(intake: AlarmIntake) -> None:
    while intake.apply_later():
        pass


def test_a_storm_recorded_for_later_is_answered_before_it_is_applied_then_applied_whole(
    engine: sa.Engine,
) -> None:
    intake = make_intake(engine)
    arrivals = storm(4)

    answers = intake.record_later(arrivals)

    assert answers == [RECORDED] * len(arrivals)
    assert outcomes(engine) == [PENDING] * len(arrivals)
    assert states(engine) == {}
    assert intake.backlog() == len(arrivals)
    assert intake.metrics.registry.get_sample_value("opsbot_intake_backlog") == len(arrivals)

    apply_all(intake)

    assert intake.backlog() == 0
    assert PENDING not in outcomes(engine)
    assert states(engine) == {f"prod-svc{n}-5xx": ("open", "ALARM") for n in range(4)}
    assert paged_once_each(engine, 4)
    lags = intake.metrics.registry.get_sample_value("opsbot_intake_apply_lag_seconds_count")
    assert lags == len(arrivals)
    # A redelivery of one already recorded is a duplicate, pending or applied.
    assert intake.record_later([arrivals[0]]) == ["duplicate"]


def test_what_a_crash_left_pending_is_applied_at_the_next_start(engine: sa.Engine) -> None:
    crashed = make_intake(engine)
    crashed.record_later(storm(3))  # answered, then the process died before applying

    restarted = make_intake(engine)
    restarted.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while PENDING in outcomes(engine) and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
    finally:
        restarted.stop()

    assert PENDING not in outcomes(engine)
    assert states(engine) == {f"prod-svc{n}-5xx": ("open", "ALARM") for n in range(3)}
    assert paged_once_each(engine, 3)


def test_a_lone_notification_behind_a_backlog_waits_its_turn(engine: sa.Engine) -> None:
    intake = make_intake(engine)
    # The ALARM is recorded for later; the OK after it arrives alone, with the ALARM
    # still pending. Applied first, the OK would find nothing to resolve and the
    # ALARM would then open an incident and page for an alarm that is OK.
    intake.record_later([change("prod-order-5xx", "ALARM", second=0)])
    try:
        answer = intake.submit(change("prod-order-5xx", "OK", second=1)).result(timeout=30)
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while intake.backlog() and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
    finally:
        intake.stop()

    assert answer == RECORDED
    assert states(engine) == {"prod-order-5xx": ("resolved", "OK")}
    with engine.connect() as connection:
        kinds = list(
            connection.scalars(sa.select(IncidentEvent.to_state).order_by(IncidentEvent.id))
        )
    assert kinds == ["ALARM", "OK"]


@POSTGRESQL
def test_two_instances_sweeping_the_same_pending_rows_apply_each_once(
    engine: sa.Engine,
) -> None:
    make_intake(engine).record_later(storm(6))  # an instance that died since
    first, second = make_intake(engine), make_intake(engine)
    assert first.sweep(older_than_s=0) == second.sweep(older_than_s=0) == 18

    workers = [threading.Thread(target=apply_all, args=(intake,)) for intake in (first, second)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert PENDING not in outcomes(engine)
    with engine.connect() as connection:
        events = connection.scalar(sa.select(sa.func.count()).select_from(IncidentEvent))
    assert events == 18  # one timeline entry per notification, none twice
    assert paged_once_each(engine, 6)
    applied = [
        intake.metrics.registry.get_sample_value("opsbot_intake_apply_lag_seconds_count")
        for intake in (first, second)
    ]
    assert sum(applied) == 18


@POSTGRESQL
def test_a_notification_that_cannot_be_applied_is_marked_counted_and_the_rest_go_on(
    engine: sa.Engine,
) -> None:
    intake = make_intake(engine)
    # PostgreSQL refuses a NUL in text: the JSON's escape of one records (its text is
    # kept as sent) but its name never makes an incident.
    hostile = change("prod-nul\x00-5xx", "ALARM", second=0, message_id="m-hostile")
    good = change("prod-good-5xx", "ALARM", second=0)

    assert intake.record_later([hostile, good]) == [RECORDED, RECORDED]
    apply_all(intake)

    assert intake.backlog() == 0
    assert outcomes(engine)[0].startswith("failed: ")
    assert outcomes(engine)[1].startswith("incident ")
    assert states(engine) == {"prod-good-5xx": ("open", "ALARM")}
    assert intake.metrics.registry.get_sample_value("opsbot_intake_apply_failed_total") == 1


def _commit_together(intake: AlarmIntake, arrivals: list[Inbound]) -> list[str | BaseException]:
    """What each of `arrivals` is answered when the intake's writer takes them as one batch."""
    group = GroupCommit(intake.record_batch, later=intake)
    futures: list[Future[str]] = [Future() for _ in arrivals]
    group._commit(list(zip(arrivals, futures, strict=True)))
    return [f.exception() or f.result() for f in futures]


def test_the_first_of_a_batch_with_nothing_pending_is_applied_at_once_and_the_rest_later(
    engine: sa.Engine,
) -> None:
    intake = make_intake(engine)
    arrivals = storm(3)

    answers = _commit_together(intake, arrivals)

    # The first is paged now; the others are answered once recorded, in order after it.
    assert isinstance(answers[0], str) and "paged" in answers[0]
    assert answers[1:] == [RECORDED] * (len(arrivals) - 1)
    assert states(engine) == {"prod-svc0-5xx": ("open", "ALARM")}
    assert len(triggers(engine)) == 1
    assert intake.backlog() == len(arrivals) - 1

    apply_all(intake)

    assert PENDING not in outcomes(engine)
    assert paged_once_each(engine, 3)


def test_a_batch_behind_pending_notifications_is_only_recorded(engine: sa.Engine) -> None:
    intake = make_intake(engine)
    intake.record_later([change("prod-early-5xx", "ALARM", second=0)])

    answers = _commit_together(intake, storm(2))

    assert answers == [RECORDED] * 6
    assert states(engine) == {}


def test_a_first_that_cannot_be_applied_is_refused_alone_and_the_rest_recorded(
    engine: sa.Engine,
) -> None:
    intake = make_intake(engine)
    arrivals = storm(2)
    with engine.begin() as connection:  # applying needs the incidents; recording does not
        connection.execute(sa.text("ALTER TABLE incidents RENAME TO incidents_away"))
    try:
        answers = _commit_together(intake, arrivals)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE incidents_away RENAME TO incidents"))

    # The first is answered its failure (a 503: SNS delivers it again) and left no row;
    # the others are recorded, as a lone notification's failure never held up the next.
    assert isinstance(answers[0], sa.exc.DBAPIError)
    assert answers[1:] == [RECORDED] * (len(arrivals) - 1)
    assert outcomes(engine) == [PENDING] * (len(arrivals) - 1)
