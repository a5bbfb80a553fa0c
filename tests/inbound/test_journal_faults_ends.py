"""How work behind acks ends when it goes wrong: left by a stopped instance, interrupted
by a BaseException, stuck past its response_url's last minutes. Each is answered once,
logged with its journal key and counted."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bot.after_ack import AfterAck
from bot.clock import ManualClock
from bot.inbound.after_ack_journal import (
    OVERDUE_S,
    SLOW_S,
    AfterAckJournal,
    failed_text,
    not_started_text,
    overdue_text,
)
from bot.inbound.models import AfterAckWork
from bot.observability.metrics import Metrics
from bot.outbox.models import Delivery
from bot.slack_dates import slack_date

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
LEASE_S = 60.0
URL = "https://hooks.slack.com/commands/T0000/1/ack"
DEPLOY_URL = "https://hooks.slack.com/commands/T0000/2/deploy"
EVENTUALLY_S = 30.0
JOURNAL = "bot.inbound.after_ack_journal"


def journal(
    engine: sa.Engine, clock: ManualClock, owner: str, metrics: Metrics | None = None
) -> AfterAckJournal:
    return AfterAckJournal(
        sessions=sessionmaker(engine), clock=clock, lease_s=LEASE_S, owner=owner, metrics=metrics
    )


def entries(engine: sa.Engine) -> list[str]:
    with Session(engine) as db_session:
        return sorted(db_session.scalars(sa.select(AfterAckWork.what)))


def answers(engine: sa.Engine) -> dict[str, str]:
    with Session(engine) as db_session:
        deliveries = db_session.scalars(sa.select(Delivery).order_by(Delivery.id))
        return {d.payload["response_url"]: d.payload["body"]["text"] for d in deliveries}


def test_work_left_by_a_stopped_instance_is_logged_by_its_key_and_counted(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    metrics = Metrics()
    dead = journal(engine, clock, "dead-task")
    key = dead.write("/deploy start", DEPLOY_URL)
    dead.flush()
    survivor = journal(engine, clock, "survivor", metrics)
    clock.advance(seconds=LEASE_S + 1)
    survivor.tend()
    with caplog.at_level(logging.WARNING, logger=JOURNAL):
        assert survivor.tend() == 1
    [line] = [r for r in caplog.records if getattr(r, "journal_key", None) == key]
    assert (line.work, line.owner, line.received_at) == (  # type: ignore[attr-defined]
        "/deploy start",
        "dead-task",
        T0.isoformat(),
    )
    assert key in line.getMessage() and "dead-task" in line.getMessage()
    assert "hooks.slack.com" not in caplog.text
    assert (
        metrics.registry.get_sample_value(
            "opsbot_after_ack_unfinished_total", {"what": "/deploy start"}
        )
        == 1.0
    )


def test_a_failure_is_logged_with_its_journal_key(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    notes = journal(engine, ManualClock(T0), "alive")
    lane = AfterAck(1, most=1, journal=notes)

    def down() -> None:
        raise RuntimeError("PagerDuty said no")

    with caplog.at_level(logging.ERROR, logger="bot.after_ack"):
        lane.run("/incident ack", down, response_url=URL)
        lane.stop()
    [line] = caplog.records
    key = line.journal_key  # type: ignore[attr-defined]
    assert isinstance(key, str) and len(key) == 32
    assert key in line.getMessage()
    assert line.work == "/incident ack"  # type: ignore[attr-defined]


# The interruption goes on up and ends the pool's thread, as it must: pytest reports that.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("interruption", [SystemExit, KeyboardInterrupt])
def test_a_piece_interrupted_by_a_base_exception_is_answered_as_failed_and_counted(
    engine: sa.Engine, interruption: type[BaseException]
) -> None:
    notes = journal(engine, ManualClock(T0), "alive")
    metrics = Metrics()
    lane = AfterAck(1, most=1, journal=notes, metrics=metrics)

    def interrupted() -> None:
        raise interruption()

    lane.run("/deploy start", interrupted, response_url=DEPLOY_URL)
    lane.run("acknowledge button", lambda: None, response_url=URL)  # the pool goes on
    lane.stop()
    assert answers(engine) == {DEPLOY_URL: failed_text("/deploy start", slack_date(T0))}
    assert metrics.registry.get_sample_value("opsbot_after_ack_failures_total") == 1.0
    assert entries(engine) == []


def test_a_stuck_piece_is_shown_warned_of_and_answered_while_its_response_url_works(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    ticks = [0.0]  # the pool's own clock, in seconds
    metrics = Metrics()
    notes = journal(engine, clock, "alive", metrics)
    lane = AfterAck(1, most=1, journal=notes, metrics=metrics, clock=lambda: ticks[0])
    started, release = threading.Event(), threading.Event()
    deployed: list[str] = []

    def stuck() -> None:
        started.set()
        release.wait(EVENTUALLY_S)

    lane.run("acknowledge button", stuck, response_url=URL)
    lane.run("/deploy start", lambda: deployed.append("deployed"), response_url=DEPLOY_URL)
    try:
        assert started.wait(EVENTUALLY_S)
        notes.flush()
        oldest = "opsbot_after_ack_oldest_running_seconds"
        ticks[0] = clock_s = SLOW_S + 60
        clock.advance(seconds=clock_s)
        assert metrics.registry.get_sample_value(oldest) == clock_s
        with caplog.at_level(logging.WARNING, logger=JOURNAL):
            notes.tend()
        [slow] = [r for r in caplog.records if r.getMessage().endswith("s")]
        assert slow.work == "acknowledge button"  # type: ignore[attr-defined]
        assert slow.journal_key in slow.getMessage()  # type: ignore[attr-defined]
        notes.tend()
        assert len(caplog.records) == 1  # warned of once

        clock.advance(seconds=OVERDUE_S - clock_s)
        notes.tend()  # no longer renewed: answered while the response_url still works
        notes.flush()
        received = slack_date(T0)
        told = {
            URL: overdue_text("acknowledge button", received),
            DEPLOY_URL: not_started_text("/deploy start", received),
        }
        assert answers(engine) == told
        assert "may or may not" in told[URL]
        for reason in ("overdue", "late"):
            assert (
                metrics.registry.get_sample_value(
                    "opsbot_after_ack_given_up_total", {"reason": reason}
                )
                == 1.0
            )
        other = journal(engine, clock, "other")
        clock.advance(seconds=LEASE_S * 2)
        other.tend()
        assert other.tend() == 0  # nothing left for another to answer
    finally:
        release.set()
        lane.stop()
    # The /deploy waited past its person's last minutes, was told "not done", and is not.
    assert deployed == []
    assert answers(engine) == told
    assert entries(engine) == []
    assert metrics.registry.get_sample_value("opsbot_after_ack_oldest_running_seconds") == 0
