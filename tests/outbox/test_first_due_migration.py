"""Revision 0018 (deliveries.first_due_at) matches the model, and downgrades cleanly."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.db.engine import make_engine
from bot.db.migrate import alembic_config, upgrade
from bot.models import metadata


def _columns(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {c["name"] for c in sa.inspect(engine).get_columns("deliveries")}
    finally:
        engine.dispose()


def test_0018_matches_the_model_and_downgrades(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), metadata
        )
    engine.dispose()
    assert [d for d in differences if "deliveries" in repr(d)] == []
    assert "first_due_at" in _columns(url)

    command.downgrade(alembic_config(url), "0017")
    assert "first_due_at" not in _columns(url)
    upgrade(url)
    assert "first_due_at" in _columns(url)
