"""The journal after a flush that failed: a commit whose answer was lost, a piece refused."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import ManualClock
from bot.inbound.after_ack_journal import AfterAckJournal, failed_text
from bot.inbound.models import AfterAckWork
from bot.outbox.models import Delivery
from bot.slack_dates import slack_date

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
URL = "https://hooks.slack.com/commands/T0000/1/deploy"
FLAG_URL = "https://hooks.slack.com/commands/T0000/2/flag"


def entries(engine: sa.Engine) -> list[str]:
    with Session(engine) as db_session:
        return sorted(db_session.scalars(sa.select(AfterAckWork.what)))


def answered(engine: sa.Engine) -> list[str]:
    return list(answer_texts(engine))


def answer_texts(engine: sa.Engine) -> dict[str, str]:
    with Session(engine) as db_session:
        deliveries = db_session.scalars(sa.select(Delivery).order_by(Delivery.id))
        return {d.payload["response_url"]: d.payload["body"]["text"] for d in deliveries}


def losing_the_first_commit_answer(
    engine: sa.Engine, *, meanwhile: Callable[[], None] = lambda: None
) -> sessionmaker[Session]:
    """Sessions whose first commit reaches the database and then raises, as when the
    connection drops at COMMIT; `meanwhile` runs before it raises."""
    lost = {"yet": False}

    class AnswerLost(Session):
        def commit(self) -> None:
            super().commit()
            if not lost["yet"]:
                lost["yet"] = True
                meanwhile()
                raise OperationalError(
                    "COMMIT", {}, Exception("server closed the connection unexpectedly")
                )

    return sessionmaker(engine, class_=AnswerLost)


@contextmanager
def refusing(engine: sa.Engine, table: str, column: str, word: str) -> Iterator[None]:
    """The database refuses rows of `table` whose `column` holds `word`, until the end."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                f"ALTER TABLE {table} ADD CONSTRAINT refuse_{word} "
                f"CHECK ({column}::text NOT LIKE '%%{word}%%') NOT VALID"
            )
        else:
            connection.exec_driver_sql(
                f"CREATE TRIGGER refuse_{word} BEFORE INSERT ON {table} "
                f"WHEN NEW.{column} LIKE '%{word}%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
    try:
        yield
    finally:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT refuse_{word}")
            else:
                connection.exec_driver_sql(f"DROP TRIGGER refuse_{word}")


def test_while_a_piece_whose_commit_answer_was_lost_runs_the_rest_is_written(
    engine: sa.Engine,
) -> None:
    notes = AfterAckJournal(
        sessions=losing_the_first_commit_answer(engine), clock=ManualClock(T0), owner="me"
    )
    deploy = notes.write("/deploy start", URL)  # a long deploy: still running
    notes.flush()  # committed, but told it failed
    flag = notes.write("/flag set", FLAG_URL)
    notes.failed(flag)  # raised: its person is owed an answer
    oncall = notes.write("/oncall", None)
    notes.flush()

    assert answered(engine) == [FLAG_URL]
    assert entries(engine) == ["/deploy start", "/oncall"]
    notes.cross_out(oncall)
    notes.cross_out(deploy)
    notes.flush()
    assert entries(engine) == []
    assert answered(engine) == [FLAG_URL]


@pytest.mark.parametrize("ending", ["done", "raised"])
def test_the_entry_of_a_piece_whose_commit_answer_was_lost_goes_when_the_piece_ends(
    engine: sa.Engine, ending: str
) -> None:
    notes = AfterAckJournal(
        sessions=losing_the_first_commit_answer(engine), clock=ManualClock(T0), owner="me"
    )
    deploy = notes.write("/deploy start", URL)
    notes.flush()  # committed, but told it failed
    assert entries(engine) == ["/deploy start"]
    if ending == "done":
        notes.cross_out(deploy)
    else:
        notes.failed(deploy)
    notes.flush()

    assert entries(engine) == []  # no "opsbot stopped before it finished" when this one stops
    if ending == "done":
        assert answer_texts(engine) == {}
    else:
        assert answer_texts(engine) == {URL: failed_text("/deploy start", slack_date(T0))}


def test_a_piece_that_ends_while_its_commit_answer_is_lost_loses_its_entry(
    engine: sa.Engine,
) -> None:
    keys: list[str] = []

    def deploy_ends() -> None:
        notes.cross_out(keys[0])

    notes = AfterAckJournal(
        sessions=losing_the_first_commit_answer(engine, meanwhile=deploy_ends),
        clock=ManualClock(T0),
        owner="me",
    )
    keys.append(notes.write("/deploy start", URL))
    notes.flush()  # committed; the deploy ends before the flush hears it failed
    notes.flush()
    assert entries(engine) == []


def test_an_entry_the_database_refuses_holds_up_no_other_piece(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    notes = AfterAckJournal(sessions=sessionmaker(engine), clock=ManualClock(T0), owner="me")
    oncall = notes.write("/oncall", None)
    notes.flush()
    notes.cross_out(oncall)
    notes.write("/deploy start", URL)
    poisoned = notes.write("poison button", URL + "/poison")
    notes.failed(notes.write("/flag set", FLAG_URL))
    with refusing(engine, "after_ack_work", "what", "poison"):
        with caplog.at_level(logging.ERROR, logger="bot.inbound.after_ack_journal"):
            notes.flush()
        assert entries(engine) == ["/deploy start"]
        assert answered(engine) == [FLAG_URL]
        assert "journal entry of a poison button refused (IntegrityError)" in caplog.text

        # Given up: not tried again, so that it never holds up a batch again.
        caplog.clear()
        notes.write("acknowledge button", None)
        notes.flush()
        assert entries(engine) == ["/deploy start", "acknowledge button"]
        assert caplog.text == ""

    # Its work still runs, and is answered for when it raises.
    notes.failed(poisoned)
    notes.flush()
    assert answered(engine) == [FLAG_URL, URL + "/poison"]


def test_an_answer_the_database_refuses_holds_up_no_other_piece(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    notes = AfterAckJournal(sessions=sessionmaker(engine), clock=ManualClock(T0), owner="me")
    poisoned = notes.write("poison button", URL + "/poison")
    flag = notes.write("/flag set", FLAG_URL)
    notes.flush()
    notes.failed(poisoned)
    notes.failed(flag)
    notes.write("/deploy start", URL)
    with (
        refusing(engine, "deliveries", "payload", "poison"),
        caplog.at_level(logging.ERROR, logger="bot.inbound.after_ack_journal"),
    ):
        notes.flush()
        assert answered(engine) == [FLAG_URL]
        assert "answer to a failed poison button refused (IntegrityError)" in caplog.text
        notes.flush()  # the delete that went with the answer given up
    assert entries(engine) == ["/deploy start"]
    assert answered(engine) == [FLAG_URL]


def test_a_refused_batch_is_kept_whole_when_the_database_takes_none_of_it(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    notes = AfterAckJournal(sessions=sessionmaker(engine), clock=ManualClock(T0), owner="me")
    notes.write("/deploy start poison", URL)
    notes.write("poison button", None)
    with refusing(engine, "after_ack_work", "what", "poison"):
        with caplog.at_level(logging.ERROR, logger="bot.inbound.after_ack_journal"):
            notes.flush()
        assert entries(engine) == []
    assert caplog.text == ""  # nothing given up
    notes.flush()
    assert entries(engine) == ["/deploy start poison", "poison button"]


def test_the_deletes_piled_up_by_a_long_outage_do_not_stop_the_journal(
    engine: sa.Engine,
) -> None:
    """Every piece that ends while the database is down leaves a delete owed; more
    than one statement may bind (PostgreSQL 65,535 parameters, SQLite 250,000) must
    not fail every flush once it is back."""
    down = {"now": True}

    class Unreachable(Session):
        def execute(self, *args: Any, **kwargs: Any) -> Any:
            if down["now"]:
                raise OperationalError("SELECT 1", {}, Exception("connection refused"))
            return super().execute(*args, **kwargs)

    notes = AfterAckJournal(
        sessions=sessionmaker(engine, class_=Unreachable), clock=ManualClock(T0), owner="me"
    )
    keys = [notes.write("/oncall", None) for _ in range(260_000)]
    notes.flush()  # the database is down: kept for the next flush
    for key in keys:
        notes.cross_out(key)
    down["now"] = False
    deploy = notes.write("/deploy start", URL)
    notes.flush()

    assert entries(engine) == ["/deploy start"]
    notes.cross_out(deploy)
    notes.flush()
    assert entries(engine) == []
