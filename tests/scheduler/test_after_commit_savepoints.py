"""Work handed on after a commit waits for the transaction itself, not a SAVEPOINT.

SQLAlchemy fires `after_commit` when a SAVEPOINT is released too: a job
scheduled before one (an ops notice, an inbound claim and a deploy lock use
them) was stored at once, and stayed stored when the transaction then rolled
back, so it could run before, or without, the state it checks. A SAVEPOINT
rolled back drops only what was noted inside it. Real engines, a real job
store; the counting handlers of `bot.db.committed` follow the same rules.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from bot.db import committed
from bot.db.engine import make_sessionmaker
from bot.scheduler.deferred import apply_after_commit, schedule_after_commit
from bot.scheduler.scheduler import JobScheduler
from tests.scheduler.test_stop import stored

CHASE = "test.chase"
DUE = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


def scheduler(engine: sa.Engine) -> JobScheduler:
    jobs = JobScheduler(engine, background=False)
    jobs.start({CHASE: lambda **_: None})
    return jobs


def test_a_job_scheduled_before_a_savepoint_waits_for_the_commit_and_goes_with_a_rollback(
    engine: sa.Engine,
) -> None:
    jobs = scheduler(engine)
    sessions = make_sessionmaker(engine)
    apply_after_commit(sessions, jobs)
    try:
        with sessions() as db_session:
            schedule_after_commit(db_session, CHASE, at=DUE, job_id="incident-1:chase")
            with db_session.begin_nested():
                pass
            assert stored(engine) == []  # released, not committed
            db_session.rollback()
        assert stored(engine) == []

        with sessions() as db_session:
            schedule_after_commit(db_session, CHASE, at=DUE, job_id="incident-2:chase")
            with db_session.begin_nested():
                schedule_after_commit(db_session, CHASE, at=DUE, job_id="incident-3:chase")
            db_session.commit()
        assert stored(engine) == [("incident-2:chase", DUE), ("incident-3:chase", DUE)]
    finally:
        jobs.stop()


def test_a_savepoint_rolled_back_drops_only_what_was_noted_inside_it(engine: sa.Engine) -> None:
    sessions = make_sessionmaker(engine)
    handed: list[str] = []
    committed.on_commit(sessions, "test.items", handed.append)
    with sessions() as db_session:
        db_session.connection()
        committed.note(db_session, "test.items", "outer")
        with db_session.begin_nested():
            committed.note(db_session, "test.items", "kept savepoint")
        savepoint = db_session.begin_nested()
        committed.note(db_session, "test.items", "rolled back")
        with db_session.begin_nested():
            committed.note(db_session, "test.items", "inside the rolled back one")
        savepoint.rollback()
        committed.note(db_session, "test.items", "after")
        assert handed == []
        db_session.commit()
    assert handed == ["outer", "kept savepoint", "after"]

    with sessions() as db_session:
        committed.note(db_session, "test.items", "never")
        db_session.rollback()
    assert handed == ["outer", "kept savepoint", "after"]


def test_a_failing_handler_stops_no_other_and_the_commit_stands(engine: sa.Engine) -> None:
    sessions = make_sessionmaker(engine)
    handed: list[str] = []

    def fails(item: object) -> None:
        raise RuntimeError("a counter's bug")

    committed.on_commit(sessions, "test.fails", fails)
    committed.on_commit(sessions, "test.counts", handed.append)
    with sessions() as db_session:
        committed.note(db_session, "test.fails", "one")
        committed.note(db_session, "test.counts", "two")
        db_session.commit()  # does not raise
    assert handed == ["two"]


def test_what_a_closed_session_noted_is_not_handed_on_by_its_next_commit(
    engine: sa.Engine,
) -> None:
    sessions = make_sessionmaker(engine)
    handed: list[str] = []
    committed.on_commit(sessions, "test.items", handed.append)
    db_session = sessions()
    db_session.connection()
    committed.note(db_session, "test.items", "abandoned")
    db_session.close()  # neither committed nor rolled back
    committed.note(db_session, "test.items", "next")
    db_session.commit()
    db_session.close()
    assert handed == ["next"]
