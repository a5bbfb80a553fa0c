"""Database time bounds: a statement over the timeout fails clearly; migrations get longer."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from bot.db.engine import DbTimeouts, make_engine
from bot.db.migrate import MIGRATION_LOCK, MIGRATION_STATEMENT_TIMEOUT_S, upgrade
from bot.settings import Settings
from tests.support import wait_for

SHORT = DbTimeouts(connect_s=5, statement_s=0.3, idle_in_transaction_s=60)


def test_a_statement_longer_than_the_timeout_fails_clearly(database_url: str) -> None:
    engine = make_engine(database_url, timeouts=SHORT)
    try:
        if engine.dialect.name == "postgresql":
            with pytest.raises(OperationalError, match="statement timeout"), engine.connect() as c:
                c.execute(sa.text("SELECT pg_sleep(30)"))
        else:
            # SQLite has no statement timeout; a statement waits this long for the lock.
            holder = make_engine(database_url)
            with (
                holder.begin(),  # BEGIN IMMEDIATE: the write lock, held
                pytest.raises(OperationalError, match="database is locked"),
                engine.begin() as c,
            ):
                c.execute(sa.text("SELECT 1"))
            holder.dispose()
        # The pool's next connection works (the timeout ended a statement, not the service).
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_the_settings_timeouts_are_the_sessions_timeouts(postgres_url: str) -> None:
    settings = Settings(
        database_url=postgres_url,
        db_statement_timeout_s=12,
        db_idle_in_transaction_timeout_s=45,
    )
    engine = make_engine(settings.effective_database_url, timeouts=settings.db_timeouts)
    try:
        with engine.connect() as c:
            assert c.execute(sa.text("SHOW statement_timeout")).scalar() == "12s"
            assert c.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar() == "45s"
    finally:
        engine.dispose()


def test_the_defaults_bound_every_session(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as c:
            assert c.execute(sa.text("SHOW statement_timeout")).scalar() == "30s"
            assert c.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar() == "1min"
    finally:
        engine.dispose()


def test_a_peer_gone_silent_is_noticed_within_a_minute_from_both_ends(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as c:
            if c.execute(sa.text("SELECT inet_client_addr()")).scalar() is None:
                pytest.skip("a Unix socket has no TCP keepalives to show")
            server = {
                name: c.execute(sa.text(f"SHOW {name}")).scalar()
                for name in (
                    "tcp_keepalives_idle",
                    "tcp_keepalives_interval",
                    "tcp_keepalives_count",
                    "tcp_user_timeout",
                )
            }
            client = c.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        engine.dispose()
    # The server ends a dead leader's session (and frees the scheduler's lock) ...
    assert server == {
        "tcp_keepalives_idle": "30",
        "tcp_keepalives_interval": "10",
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": "60000",
    }
    # ... and the leader's own check fails on a dead path instead of hanging.
    assert {k: client.get(k) for k in ("keepalives", "keepalives_idle", "tcp_user_timeout")} == {
        "keepalives": "1",
        "keepalives_idle": "30",
        "tcp_user_timeout": "60000",
    }


def test_a_url_that_sets_its_own_options_keeps_them(postgres_url: str) -> None:
    url = sa.engine.make_url(postgres_url).update_query_dict(
        {"options": "-c statement_timeout=7000 -c search_path=public"}
    )
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as c:
            assert c.execute(sa.text("SHOW statement_timeout")).scalar() == "7s"
            assert c.execute(sa.text("SHOW search_path")).scalar() == "public"
    finally:
        engine.dispose()


def test_a_migration_waits_for_the_lock_past_the_statement_timeout(postgres_url: str) -> None:
    """Another task migrating holds the lock longer than a statement may take: this one waits."""
    holder = make_engine(postgres_url).connect()
    holder.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
    holder.commit()
    failure: list[BaseException] = []

    def migrate() -> None:
        try:
            # "head", not the default "heads": a database already at the heads is left
            # alone without taking the lock; alembic's own path is the one under test.
            upgrade(postgres_url, "head", timeouts=SHORT)
        except BaseException as exc:  # reported below
            failure.append(exc)

    thread = threading.Thread(target=migrate)
    thread.start()
    try:
        # Released only once the migration has waited for it longer than SHORT allows.
        wait_for(lambda: _waiting_for_the_lock(holder))
        threading.Event().wait(SHORT.statement_s * 3)
        assert _waiting_for_the_lock(holder), "the migration gave up waiting for the lock"
    finally:
        holder.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
        holder.commit()
        thread.join(60)
        holder.close()
    assert not failure, failure
    assert SHORT.statement_s < MIGRATION_STATEMENT_TIMEOUT_S


def _waiting_for_the_lock(connection: sa.Connection) -> bool:
    waiting = connection.execute(
        sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND objid = :key"
        ),
        {"key": MIGRATION_LOCK},
    ).scalar()
    connection.commit()
    return bool(waiting)
