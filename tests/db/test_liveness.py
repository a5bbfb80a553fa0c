"""A pooled PostgreSQL connection the server ended is replaced before use, without a
round trip on every checkout; one idle a long time is pinged first."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from bot.app import build_runtime
from bot.config import Config
from bot.db.engine import ENDED, make_engine
from bot.settings import Settings
from tests.support import wait_for


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every ping SQLAlchemy's PostgreSQL dialect sends."""
    sent: list[object] = []
    original: Callable[[Any, Any], bool] = PGDialect_psycopg.do_ping

    def counted(self: PGDialect_psycopg, dbapi_connection: Any) -> bool:
        sent.append(dbapi_connection)
        return original(self, dbapi_connection)

    monkeypatch.setattr(PGDialect_psycopg, "do_ping", counted)
    yield sent


def _backend(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.scalar(sa.text("SELECT pg_backend_pid()")) or 0)


def _alive(engine: sa.Engine, pid: int) -> bool:
    with engine.connect() as connection:
        found = connection.scalar(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )
    return bool(found)


def test_a_connection_the_server_ended_is_replaced_before_use_without_a_ping(
    postgres_url: str, pings: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    replaced: list[str] = []
    engine = make_engine(postgres_url, on_replaced=replaced.append)
    other = make_engine(postgres_url)
    try:
        first = _backend(engine)  # back in the pool, idle
        with other.connect() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        wait_for(lambda: not _alive(other, first))

        second = _backend(engine)  # no OperationalError: replaced at checkout
        third = _backend(engine)

        assert second != first
        assert third == second
        assert pings == []
        said = [r for r in caplog.records if r.name == "bot.db.engine"]
        assert [getattr(r, "reason", None) for r in said] == ["the server ended it"]
        assert replaced == [ENDED]
    finally:
        engine.dispose()
        other.dispose()


def test_a_connection_idle_longer_than_the_limit_is_pinged_before_use(
    postgres_url: str, pings: list[object]
) -> None:
    recent = make_engine(postgres_url)
    idle = make_engine(postgres_url, ping_after_idle_s=0.0)
    try:
        assert _backend(recent) == _backend(recent)
        assert pings == []

        assert _backend(idle) == _backend(idle)
        assert len(pings) == 1  # the second checkout, of a connection idle since the first
    finally:
        recent.dispose()
        idle.dispose()


def test_the_runtime_counts_each_pool_it_found_a_dead_connection_in(
    settings: Settings, config: Config
) -> None:
    # Built, not started: no thread of its own takes the ended connection first.
    runtime = build_runtime(settings, config)
    if runtime.engine.dialect.name != "postgresql":
        runtime.stop()
        pytest.skip("SQLite has no connection a server could end")

    def invalidations(pool: str) -> float:
        labels = {"pool": pool, "reason": ENDED}
        found = runtime.metrics.registry.get_sample_value(
            "opsbot_db_pool_invalidations_total", labels
        )
        return found or 0.0

    first = _backend(runtime.engine)
    terminator = make_engine(settings.effective_database_url)
    try:
        with terminator.connect() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        wait_for(lambda: not _alive(terminator, first))
    finally:
        terminator.dispose()
    try:
        assert invalidations("main") == 0
        with runtime.sessions() as db:
            assert db.scalar(sa.text("SELECT 1")) == 1  # on a new connection
        assert invalidations("main") == 1
        assert invalidations("outbox") == 0
    finally:
        runtime.stop()
