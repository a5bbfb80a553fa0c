"""/readyz is ready only against the schema this code's migrations end at."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from starlette.testclient import TestClient

from bot.app import build_runtime, create_app
from bot.config import Config
from bot.db.migrate import alembic_config, script_heads, upgrade
from bot.settings import Settings


def test_readyz_is_503_one_revision_behind_and_ready_once_upgraded(
    config: Config, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/behind.db"
    [head] = script_heads()
    previous = ScriptDirectory.from_config(alembic_config(url)).get_revision(head).down_revision
    assert isinstance(previous, str)
    upgrade(url, previous)
    client = TestClient(create_app(build_runtime(Settings(database_url=url), config)))

    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["database"] == (
        f"database schema at {previous}, expected {head}: run `opsbot db upgrade`"
    )

    upgrade(url)
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "database": "ok"}


def test_readyz_against_a_newer_release_s_schema_says_so_rather_than_upgrade(
    config: Config, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/ahead.db"
    upgrade(url)
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # as a newer release's migration leaves it
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999_next'"))
    engine.dispose()
    client = TestClient(create_app(build_runtime(Settings(database_url=url), config)))

    answer = client.get("/readyz")
    assert answer.status_code == 503
    [head] = script_heads()
    assert answer.json()["database"] == (
        f"database schema at 9999_next, newer than this code's migrations (it expects {head}): "
        "run the release that migrated it"
    )
