"""The storm path when the database's pool is exhausted: a failed batch changes nothing,
what was recorded is never marked failed for it, and the writer lives on.

Real engines (SQLite and PostgreSQL) whose pool holds one connection: the test
holds it, so every checkout by the intake waits `POOL_TIMEOUT_S` and then raises
SQLAlchemy's own `TimeoutError`. Where it matters, the connection is handed
back the moment the intake reports its failure (the pool frees up right after),
the worst moment for a batch to be half-recorded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bot.alarms import batch
from bot.alarms.intake import RECORDED, AlarmIntake
from bot.alarms.models import PENDING, ReceivedMessage
from bot.alarms.service import Inbound
from bot.db.engine import make_engine
from tests.alarms.test_intake_later import change, make_intake, outcomes
from tests.support import wait_for

POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
# How long a checkout waits for the held connection: long enough that the
# test's own steps fit in it, short enough not to slow the test.
POOL_TIMEOUT_S = 0.3
# A checkout that must wait for the test (it hands the connection back itself).
HELD_S = 60.0


class HeldPool:
    """The pool's only connection, held by the test; handed back once, from any thread."""

    def __init__(self, engine: sa.Engine) -> None:
        self._connection: sa.Connection | None = engine.connect()
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class ReleaseOnReport(logging.Handler):
    """Hands the held connection back as soon as the intake reports a failure."""

    def __init__(self, held: HeldPool) -> None:
        super().__init__(logging.WARNING)
        self.held = held

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("bot.alarms."):
            self.held.release()


def one_connection(database_url: str, timeout_s: float = POOL_TIMEOUT_S) -> sa.Engine:
    return make_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=timeout_s)


@pytest.fixture
def report_frees_pool() -> Iterator[Callable[[HeldPool], None]]:
    handlers: list[logging.Handler] = []

    def watch(held: HeldPool) -> None:
        handler = ReleaseOnReport(held)
        handlers.append(handler)
        logging.getLogger("bot.alarms").addHandler(handler)

    yield watch
    for handler in handlers:
        logging.getLogger("bot.alarms").removeHandler(handler)


def recorded_ids(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(sa.select(ReceivedMessage.message_id)))


def failed(engine: sa.Engine) -> list[str]:
    return [o for o in outcomes(engine) if o.startswith("failed")]


def storm(prefix: str, count: int) -> list[Inbound]:
    return [change(f"prod-{prefix}{n}-5xx", "ALARM", second=n) for n in range(count)]


def test_a_batch_whose_pool_checkout_times_out_fails_whole_and_records_none_of_it(
    database_url: str, report_frees_pool: Callable[[HeldPool], None]
) -> None:
    engine = one_connection(database_url)
    intake = make_intake(engine)
    lost = storm("lost", 3)
    held = HeldPool(engine)
    report_frees_pool(held)

    answers = intake.record_later(lost)

    # Every one of them fails (the /sns handler answers each 503: SNS delivers it
    # again), and none was recorded, though the pool was free again right after.
    assert all(isinstance(answer, PoolTimeout) for answer in answers)
    assert recorded_ids(engine) == set()
    assert intake.backlog() == 0
    registry = intake.metrics.registry
    assert registry.get_sample_value("opsbot_intake_batch_size_count", {"via": "https"}) == 1
    assert registry.get_sample_value(
        "opsbot_alarm_notifications_total", {"via": "https", "outcome": "error"}
    ) == len(lost)

    # The next batch goes through the writer and commits; SNS's retries are duplicates
    # of nothing, so they are recorded too.
    again = [intake.submit(inbound) for inbound in [*storm("next", 2), *lost]]
    assert all(isinstance(answer.result(30), str) for answer in again)
    wait_for(lambda: intake.backlog() == 0 and PENDING not in outcomes(engine))
    assert recorded_ids(engine) == {i.message_id for i in [*storm("next", 2), *lost]}
    assert failed(engine) == []
    intake.stop()
    engine.dispose()


def test_recorded_notifications_are_not_marked_failed_when_the_pool_is_exhausted_while_applying(
    database_url: str, report_frees_pool: Callable[[HeldPool], None]
) -> None:
    engine = one_connection(database_url)
    intake = make_intake(engine)
    recorded = storm("kept", 3)
    assert intake.record_later(recorded) == [RECORDED] * 3
    held = HeldPool(engine)
    report_frees_pool(held)

    # The pool gives no connection: all three stay pending, none is given up on.
    assert intake.apply_later() == 0
    assert intake.backlog() == 3
    assert outcomes(engine) == [PENDING] * 3

    while intake.apply_later():
        pass
    assert failed(engine) == []
    assert PENDING not in outcomes(engine)
    assert intake.metrics.registry.get_sample_value("opsbot_intake_apply_failed_total") == 0
    engine.dispose()


def test_looking_for_pending_notifications_with_an_exhausted_pool_finds_none_and_raises_nothing(
    database_url: str,
) -> None:
    engine = one_connection(database_url)
    intake = make_intake(engine)
    held = HeldPool(engine)

    assert intake.sweep(older_than_s=0.0) == 0
    # So the start-up (which sweeps first) starts the writer all the same.
    intake.start()
    held.release()
    assert isinstance(intake.submit(storm("after", 1)[0]).result(30), str)
    intake.stop()
    engine.dispose()


def _applying_reported(records: list[logging.LogRecord]) -> bool:
    return any(r.name == "bot.alarms.intake" and "appl" in r.getMessage() for r in records)


def test_the_writer_outlives_an_exhausted_pool_and_records_the_next_batch(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = one_connection(database_url)
    intake = make_intake(engine)
    pending = storm("waiting", 2)
    assert intake.record_later(pending) == [RECORDED] * 2
    held = HeldPool(engine)
    caplog.set_level(logging.INFO, logger="bot.alarms")

    # A storm's batch while the pool gives nothing: it fails (a 5xx), and so does the
    # writer's turn at applying what is pending.
    lost = storm("lost", 1)[0]
    answer = intake.submit(lost)
    assert isinstance(answer.exception(30), PoolTimeout)
    wait_for(lambda: _applying_reported(caplog.records))
    held.release()

    # The same writer takes the next batch and commits it, then applies the rest.
    after = storm("after", 1)[0]
    assert isinstance(intake.submit(after).result(30), str)
    # Looked at through a pool of its own: the writer's one connection is not the test's
    # to wait for (on a loaded machine its applying outlasted the pool's timeout).
    observer = make_engine(database_url)
    wait_for(lambda: intake.backlog() == 0 and PENDING not in outcomes(observer))
    assert failed(observer) == []
    assert recorded_ids(observer) == {i.message_id for i in [*pending, after]}
    intake.stop()
    observer.dispose()
    engine.dispose()


def test_the_writer_outlives_an_answer_whose_request_is_gone(database_url: str) -> None:
    engine = one_connection(database_url, timeout_s=HELD_S)
    intake: AlarmIntake = make_intake(engine)
    held = HeldPool(engine)

    # The writer has taken it and waits for a connection; meanwhile its request is
    # cancelled (as asyncio.wrap_future does when the handler's task is).
    gone: Future[str] = intake.submit(storm("gone", 1)[0])
    wait_for(lambda: intake.waiting() == 0)
    assert gone.cancel()
    held.release()

    after = intake.submit(storm("after", 1)[0])
    assert after.result(30).startswith("incident ")
    assert recorded_ids(engine) == {"m-prod-gone0-5xx-0", "m-prod-after0-5xx-0"}
    intake.stop()
    engine.dispose()


def _survived(records: list[logging.LogRecord], step: str) -> bool:
    return any(r.name == "bot.alarms.batch" and getattr(r, "step", None) == step for r in records)


@contextmanager
def table_gone(engine: sa.Engine, table: str) -> Iterator[None]:
    """`table` renamed away: PostgreSQL answers UndefinedTable (a ProgrammingError), an
    error neither of the connection nor of one notification, which no handler expects."""
    with engine.begin() as connection:
        connection.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"ALTER TABLE {table}_away RENAME TO {table}")


@POSTGRESQL
def test_recorded_notifications_neither_applied_nor_marked_stay_pending_and_are_taken_up_again(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    intake = make_intake(engine)
    pending = storm("stuck", 2)
    assert intake.record_later(pending) == [RECORDED] * 2

    with table_gone(engine, "received_messages"):
        assert intake.apply_later() == 2  # taken, failed, not marked: nothing raised

    assert outcomes(engine) == [PENDING] * 2
    assert intake.sweep(older_than_s=0.0) == 2
    while intake.apply_later():
        pass
    assert failed(engine) == []
    assert PENDING not in outcomes(engine)
    engine.dispose()


@POSTGRESQL
def test_the_writer_outlives_an_error_no_handler_expects_and_records_the_next_batch(
    database_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer looks for what other instances left pending as soon as it is idle.
    monkeypatch.setattr(batch, "SWEEP_EVERY_S", 0.05)
    engine = make_engine(database_url)
    intake = make_intake(engine)
    caplog.set_level(logging.INFO, logger="bot.alarms")

    with table_gone(engine, "received_messages"):
        refused = intake.submit(storm("refused", 1)[0])
        assert refused.exception(30) is not None  # a 5xx
        wait_for(lambda: _survived(caplog.records, "sweep"))

    errors = intake.metrics.registry.get_sample_value(
        "opsbot_intake_writer_errors_total", {"step": "sweep"}
    )
    assert errors is not None and errors >= 1
    after = storm("after", 1)[0]
    assert intake.submit(after).result(30).startswith("incident ")
    assert recorded_ids(engine) == {after.message_id}
    intake.stop()
    engine.dispose()
