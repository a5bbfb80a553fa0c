"""The outbox gauges' own connection is bounded by the settings' timeouts like the others."""

from __future__ import annotations

import sqlalchemy as sa

from bot.app import build_runtime
from bot.config import Config
from bot.settings import Settings


def test_the_gauges_connection_has_the_settings_timeouts(postgres_url: str, config: Config) -> None:
    settings = Settings(
        database_url=postgres_url, db_statement_timeout_s=12, db_idle_in_transaction_timeout_s=45
    )
    runtime = build_runtime(settings, config)
    assert runtime.outbox_gauges is not None
    engine = runtime.outbox_gauges.engine
    try:
        with engine.connect() as c:
            assert c.execute(sa.text("SHOW statement_timeout")).scalar() == "12s"
            assert c.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar() == "45s"
    finally:
        engine.dispose()
        runtime.engine.dispose()
