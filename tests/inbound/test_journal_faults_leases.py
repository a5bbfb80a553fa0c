"""The journal's leases when an instance cannot reach the database for a while: renewed
apart from the main pool, and work another instance answered as lost is reported, not
started, and answered once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bot.after_ack import AfterAck
from bot.clock import ManualClock
from bot.db.engine import make_engine
from bot.inbound.after_ack_journal import (
    AfterAckJournal,
    not_started_text,
    unfinished_text,
)
from bot.inbound.models import AfterAckWork
from bot.observability.metrics import Metrics
from bot.outbox.models import Delivery
from bot.slack_dates import slack_date
from tests.support import wait_for

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
LEASE_S = 60.0
URL = "https://hooks.slack.com/commands/T0000/1/ack"
DEPLOY_URL = "https://hooks.slack.com/commands/T0000/2/deploy"
EVENTUALLY_S = 30.0


def one_connection(database_url: str) -> sa.Engine:
    """A pool of one connection that gives up waiting for it at once."""
    return make_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.05)


@contextmanager
def starved(engine: sa.Engine) -> Iterator[None]:
    """Every connection of `engine` held elsewhere: a checkout times out, as in a storm."""
    held = engine.connect()
    try:
        yield
    finally:
        held.close()


def entries(engine: sa.Engine) -> list[tuple[str, str]]:
    with Session(engine) as db_session:
        rows = db_session.scalars(sa.select(AfterAckWork).order_by(AfterAckWork.what))
        return [(row.owner, row.what) for row in rows]


def answers(engine: sa.Engine) -> dict[str, str]:
    with Session(engine) as db_session:
        deliveries = db_session.scalars(sa.select(Delivery).order_by(Delivery.id))
        return {d.payload["response_url"]: d.payload["body"]["text"] for d in deliveries}


class Lane:
    """An instance's pool of one thread: a click's work running, a /deploy queued behind it."""

    def __init__(self, journal: AfterAckJournal, metrics: Metrics) -> None:
        self.lane = AfterAck(1, most=1, journal=journal, metrics=metrics)
        self.started = threading.Event()
        self.release = threading.Event()
        self.deployed: list[str] = []
        self.lane.run("acknowledge button", self._click, response_url=URL)
        self.lane.run(
            "/deploy start", lambda: self.deployed.append("deployed"), response_url=DEPLOY_URL
        )
        assert self.started.wait(EVENTUALLY_S)

    def _click(self) -> None:
        self.started.set()
        self.release.wait(EVENTUALLY_S)

    def finish(self) -> None:
        self.release.set()
        self.lane.stop()


def test_leases_are_renewed_while_the_main_pool_is_starved(
    database_url: str, engine: sa.Engine
) -> None:
    clock = ManualClock(T0)
    main = one_connection(database_url)
    alive = AfterAckJournal(
        sessions=sessionmaker(main),
        leases=sessionmaker(engine),
        clock=clock,
        lease_s=LEASE_S,
        owner="alive",
    )
    other = AfterAckJournal(sessions=sessionmaker(engine), clock=clock, lease_s=LEASE_S)
    try:
        alive.write("/deploy start", DEPLOY_URL)
        alive.flush()
        with starved(main):
            for _ in range(6):  # a minute and a half of a starved main pool
                clock.advance(seconds=LEASE_S / 4)
                alive.tend()
                other.tend()
        assert entries(engine) == [("alive", "/deploy start")]
        assert answers(engine) == {}
    finally:
        main.dispose()


def test_work_answered_by_another_while_still_owed_is_reported_and_not_started(
    database_url: str, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock(T0)
    metrics = Metrics()
    cut_off = one_connection(database_url)
    alive = AfterAckJournal(
        sessions=sessionmaker(cut_off), clock=clock, lease_s=LEASE_S, owner="a", metrics=metrics
    )
    other = AfterAckJournal(sessions=sessionmaker(engine), clock=clock, lease_s=LEASE_S)
    lane = Lane(alive, metrics)
    try:
        alive.flush()
        alive.tend()
        with Session(engine) as db_session:
            keys = dict(db_session.execute(sa.select(AfterAckWork.what, AfterAckWork.key)).all())
        with starved(cut_off):  # `alive` cannot reach the database; `other` can
            clock.advance(seconds=LEASE_S + 1)
            alive.tend()
            other.tend()
            assert other.tend() == 2
        with caplog.at_level(logging.ERROR, logger="bot.inbound.after_ack_journal"):
            alive.tend()  # the database again: its entries are gone
        reported = {
            getattr(r, "journal_key", None): getattr(r, "work", None)
            for r in caplog.records
            if r.levelno == logging.ERROR
        }
        assert reported == {
            keys["acknowledge button"]: "acknowledge button",
            keys["/deploy start"]: "/deploy start",
        }
        for what in ("acknowledge button", "/deploy start"):
            assert (
                metrics.registry.get_sample_value(
                    "opsbot_after_ack_leases_lost_total", {"what": what}
                )
                == 1.0
            )
    finally:
        lane.finish()
        cut_off.dispose()
    # The /deploy queued behind the click never starts: its person was told to check
    # and ask again, and a second /deploy would deploy twice. Each person is told once.
    assert lane.deployed == []
    assert answers(engine) == {
        URL: unfinished_text("acknowledge button", slack_date(T0)),
        DEPLOY_URL: unfinished_text("/deploy start", slack_date(T0)),
    }
    assert entries(engine) == []


def test_work_whose_lease_may_have_lapsed_is_not_started_and_answered_once(
    database_url: str, engine: sa.Engine
) -> None:
    clock = ManualClock(T0)
    metrics = Metrics()
    cut_off = one_connection(database_url)
    alive = AfterAckJournal(
        sessions=sessionmaker(cut_off), clock=clock, lease_s=LEASE_S, owner="a", metrics=metrics
    )
    lane = Lane(alive, metrics)
    try:
        alive.flush()
        with starved(cut_off):
            # Past the lease less one renewal: another instance may sweep it any moment.
            clock.advance(seconds=LEASE_S * 0.8)
            alive.tend()
            lane.release.set()
            wait_for(
                lambda: (
                    metrics.registry.get_sample_value(
                        "opsbot_after_ack_given_up_total", {"reason": "lease"}
                    )
                    == 1.0
                )
            )
            alive.flush()  # cannot be written yet: kept
        assert answers(engine) == {}
        alive.flush()
        assert answers(engine) == {
            DEPLOY_URL: not_started_text("/deploy start", slack_date(T0)),
        }
    finally:
        lane.finish()
        cut_off.dispose()
    assert lane.deployed == []
    assert entries(engine) == []
    other = AfterAckJournal(sessions=sessionmaker(engine), clock=clock, lease_s=LEASE_S)
    clock.advance(seconds=LEASE_S * 2)
    other.tend()
    assert other.tend() == 0
    assert len(answers(engine)) == 1


def test_work_not_started_that_another_answered_first_is_not_answered_again(
    database_url: str, engine: sa.Engine
) -> None:
    clock = ManualClock(T0)
    metrics = Metrics()
    cut_off = one_connection(database_url)
    alive = AfterAckJournal(
        sessions=sessionmaker(cut_off), clock=clock, lease_s=LEASE_S, owner="a", metrics=metrics
    )
    other = AfterAckJournal(sessions=sessionmaker(engine), clock=clock, lease_s=LEASE_S)
    lane = Lane(alive, metrics)
    try:
        alive.flush()
        with starved(cut_off):
            clock.advance(seconds=LEASE_S + 1)
            alive.tend()
            other.tend()
            assert other.tend() == 2  # told "may or may not have been done"
            lane.release.set()
            wait_for(
                lambda: (
                    metrics.registry.get_sample_value(
                        "opsbot_after_ack_given_up_total", {"reason": "lease"}
                    )
                    == 1.0
                )
            )
        alive.flush()  # its answer finds the entry gone: not given
    finally:
        lane.finish()
        cut_off.dispose()
    assert lane.deployed == []
    assert answers(engine) == {
        URL: unfinished_text("acknowledge button", slack_date(T0)),
        DEPLOY_URL: unfinished_text("/deploy start", slack_date(T0)),
    }


def test_a_first_write_that_waited_for_a_connection_leases_from_its_commit(
    database_url: str, engine: sa.Engine
) -> None:
    # A storm holds the main pool: the first write waits 50 s for a connection. Its
    # lease runs from then, or the work would be refused as lapsed on a single
    # instance, and another instance could answer it as lost before its first renewal.
    clock = ManualClock(T0)
    main = make_engine(database_url)
    waiting = {"once": False}

    @sa.event.listens_for(main, "checkout")
    def _waited(*_: object) -> None:
        if waiting["once"]:
            waiting["once"] = False
            clock.advance(seconds=50)

    alive = AfterAckJournal(
        sessions=sessionmaker(main), leases=sessionmaker(engine), clock=clock, lease_s=LEASE_S
    )
    other = AfterAckJournal(sessions=sessionmaker(engine), clock=clock, lease_s=LEASE_S)
    other.tend()
    other.tend()  # renewed twice: it may sweep
    try:
        key = alive.write("/deploy start", DEPLOY_URL)
        waiting["once"] = True
        alive.flush()
        assert alive.begin(key)
        clock.advance(seconds=11)  # a minute after the write, before its first renewal
        assert other.sweep() == 0
        assert answers(engine) == {}
    finally:
        main.dispose()
