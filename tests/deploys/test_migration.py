"""Revision 0004 matches the models, and upgrades and downgrades on both databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import make_url

from bot.db.engine import make_engine, normalise_url
from bot.db.migrate import alembic_config, upgrade
from bot.models import metadata
from sandbox.databases import drop_database

TABLES = {"deployments", "deploy_locks", "pending_actions"}


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    admin = make_url(normalise_url(os.environ["TEST_DATABASE_URL"]))
    name = f"opsbot_migration_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False)
    with engine.connect() as connection:
        drop_database(connection, name)
    engine.dispose()


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_0004_upgrades_downgrades_and_matches_the_models(fresh_url: str) -> None:
    upgrade(fresh_url)
    assert tables(fresh_url) >= TABLES
    engine = make_engine(fresh_url)
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), metadata
        )
    engine.dispose()
    ours = [d for d in differences if any(t in repr(d) for t in TABLES)]
    assert ours == []

    command.downgrade(alembic_config(fresh_url), "0002")
    assert not TABLES & tables(fresh_url)
    assert {"incidents", "apscheduler_jobs"} <= tables(fresh_url)
    upgrade(fresh_url)
    assert tables(fresh_url) >= TABLES
