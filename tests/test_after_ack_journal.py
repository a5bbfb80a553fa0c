"""The journal of work owed behind acknowledgements, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bot.after_ack import AfterAck
from bot.clock import ManualClock
from bot.inbound.after_ack_journal import AfterAckJournal, failed_text
from bot.inbound.models import AfterAckWork
from bot.observability.metrics import Metrics
from bot.outbox.models import Delivery
from bot.slack_dates import slack_date

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
LEASE_S = 60.0
URL = "https://hooks.slack.com/commands/T0000/1/deploy"


def journal(engine: sa.Engine, clock: ManualClock, owner: str) -> AfterAckJournal:
    return AfterAckJournal(sessions=sessionmaker(engine), clock=clock, lease_s=LEASE_S, owner=owner)


def entries(engine: sa.Engine) -> list[tuple[str, str]]:
    with Session(engine) as db_session:
        rows = db_session.scalars(
            sa.select(AfterAckWork).order_by(AfterAckWork.received_at, AfterAckWork.what)
        )
        return [(row.owner, row.what) for row in rows]


def answers(engine: sa.Engine) -> list[dict[str, object]]:
    with Session(engine) as db_session:
        return [d.payload for d in db_session.scalars(sa.select(Delivery).order_by(Delivery.id))]


def test_work_is_written_down_while_queued_and_crossed_out_when_done(engine: sa.Engine) -> None:
    clock = ManualClock(T0)
    notes = journal(engine, clock, "alive")
    lane = AfterAck(1, journal=notes)  # one at a time: the click waits behind the command
    release = threading.Event()
    lane.run("/deploy start", lambda: release.wait(10) or None, response_url=URL)
    lane.run("acknowledge button", lambda: None, response_url=None)
    try:
        notes.flush()
        assert sorted(entries(engine)) == [
            ("alive", "/deploy start"),
            ("alive", "acknowledge button"),
        ]
    finally:
        release.set()
        lane.stop()
    assert entries(engine) == []
    assert answers(engine) == []


def test_work_done_between_two_flushes_never_reaches_the_database(engine: sa.Engine) -> None:
    notes = journal(engine, ManualClock(T0), "alive")
    quick = notes.write("/oncall", URL)
    slow = notes.write("/deploy start", URL)
    notes.cross_out(quick)
    notes.flush()
    assert entries(engine) == [("alive", "/deploy start")]
    notes.cross_out(slow)
    assert entries(engine) == [("alive", "/deploy start")]  # until the next flush
    notes.flush()
    assert entries(engine) == []


def test_work_left_by_a_dead_instance_is_answered_once(engine: sa.Engine) -> None:
    clock = ManualClock(T0)
    dead = journal(engine, clock, "dead")
    dead.write("/deploy start", URL)
    dead.write("acknowledge button", None)  # a click without a response_url: only removed
    dead.flush()
    survivor = journal(engine, clock, "survivor")

    clock.advance(seconds=LEASE_S + 1)
    # The first renewal to reach the database sweeps nothing: others may not
    # have had their turn yet (after an outage of the database, say).
    assert survivor.tend() == 0
    assert len(entries(engine)) == 2
    assert survivor.tend() == 2

    assert entries(engine) == []
    [answer] = answers(engine)
    assert answer["response_url"] == URL
    body = answer["body"]
    assert isinstance(body, dict)
    assert body["response_type"] == "ephemeral"
    assert body["text"] == (
        f"opsbot stopped before it finished your /deploy start ({slack_date(T0)}). "
        "It may or may not have been done: check, and ask again if need be."
    )
    assert survivor.tend() == 0
    assert len(answers(engine)) == 1


def test_a_living_instance_keeps_its_work_past_the_first_lease(engine: sa.Engine) -> None:
    clock = ManualClock(T0)
    alive = journal(engine, clock, "alive")
    other = journal(engine, clock, "other")
    alive.write("/deploy start", URL)
    alive.flush()

    for _ in range(4):
        clock.advance(seconds=LEASE_S * 0.75)
        alive.tend()
        other.tend()

    assert entries(engine) == [("alive", "/deploy start")]
    assert answers(engine) == []


def test_an_instance_never_sweeps_its_own_work(engine: sa.Engine) -> None:
    clock = ManualClock(T0)
    alone = journal(engine, clock, "alone")
    alone.write("/oncall", URL)
    alone.flush()
    alone.tend()
    clock.advance(seconds=LEASE_S * 3)
    assert alone.tend() == 0
    assert entries(engine) == [("alone", "/oncall")]


def test_a_database_that_refuses_the_entries_gets_them_again(engine: sa.Engine) -> None:
    notes = journal(engine, ManualClock(T0), "alive")
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE after_ack_work RENAME TO after_ack_work_away"))
    try:
        done = notes.write("/oncall", URL)
        owed = notes.write("/deploy start", URL)
        notes.flush()  # refused: logged, kept for the next flush
        notes.cross_out(done)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE after_ack_work_away RENAME TO after_ack_work"))
    notes.flush()
    assert entries(engine) == [("alive", "/deploy start")]
    notes.cross_out(owed)
    notes.flush()
    assert entries(engine) == []


def _down() -> None:
    raise sa.exc.OperationalError("UPDATE incidents", {}, Exception("server closed the connection"))


def test_work_that_raises_is_answered_once_counted_and_crossed_out(engine: sa.Engine) -> None:
    clock = ManualClock(T0)
    notes = journal(engine, clock, "alive")
    metrics = Metrics()
    lane = AfterAck(1, journal=notes, metrics=metrics)
    release = threading.Event()

    def written_then_down() -> None:
        release.wait(10)
        _down()

    lane.run("acknowledge button", written_then_down, response_url=URL)
    lane.run("/incident ack", _down, response_url=URL + "/2")  # fails before any flush
    lane.run("resolve button", _down, response_url=None)  # nobody to tell: only counted
    notes.flush()
    assert ("alive", "acknowledge button") in entries(engine)
    release.set()
    lane.stop()  # finishes the work and flushes the journal

    assert entries(engine) == []
    texts = {a["response_url"]: a["body"]["text"] for a in answers(engine)}  # type: ignore[index]
    assert texts == {
        URL: failed_text("acknowledge button", slack_date(T0)),
        URL + "/2": failed_text("/incident ack", slack_date(T0)),
    }
    assert "Part of it may have been done" in texts[URL]
    assert metrics.registry.get_sample_value("opsbot_after_ack_failures_total") == 3.0
    notes.flush()
    assert len(answers(engine)) == 2


def test_an_answer_the_database_refuses_is_given_at_the_next_flush(engine: sa.Engine) -> None:
    notes = journal(engine, ManualClock(T0), "alive")
    owed = notes.write("/deploy start", URL)
    notes.flush()
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE after_ack_work RENAME TO after_ack_work_away"))
    try:
        notes.failed(owed)
        notes.flush()  # refused: logged, the answer and the delete kept for the next flush
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE after_ack_work_away RENAME TO after_ack_work"))
    assert answers(engine) == []
    notes.flush()
    assert entries(engine) == []
    assert [a["response_url"] for a in answers(engine)] == [URL]
