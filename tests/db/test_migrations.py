"""Migrations: every head applies, downgrades cleanly, and concurrent upgrades are safe."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from bot.db.migrate import alembic_config, upgrade
from bot.models import metadata
from sandbox.databases import drop_database
from tests.conftest import _admin_url


def test_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"merge the migration branches: {heads}"


def test_upgrade_creates_every_table_and_downgrade_removes_them(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    upgrade(url)
    engine = sa.create_engine(url)
    assert set(metadata.tables) <= set(sa.inspect(engine).get_table_names())
    command.downgrade(alembic_config(url), "base")
    assert sa.inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()


def test_concurrent_upgrades_on_postgresql() -> None:
    """Every task runs `opsbot db upgrade` at start; three at once must all succeed."""
    admin = make_url(_admin_url())
    name = f"opsbot_mig_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URL": url}
    try:
        # Separate processes, as ECS tasks starting together are (Alembic keeps global state).
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "db", "upgrade"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [run.communicate(timeout=90)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0], outputs
    finally:
        with engine.connect() as connection:
            drop_database(connection, name)
        engine.dispose()


@pytest.mark.parametrize("revision", ["0001", "0002", "0003", "0004"])
def test_older_revisions_upgrade_to_head(tmp_path: object, revision: str) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    upgrade(url, revision)
    upgrade(url)
