"""A leader that stands down frees the scheduler's lock at once, not when its pool goes.

The advisory lock belongs to the PostgreSQL session of the leadership's
connection: back in the pool, that session (and the lock) would live on until
`engine.dispose()`, and no other instance could lead meanwhile. Real
PostgreSQL; a key of the test's own, so no scheduler of another test is
disturbed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bot.db.engine import make_engine
from bot.scheduler.leader import Leadership
from tests.support import wait_for

KEY = 0x7E57_0B5


@pytest.fixture
def engines(postgres_url: str) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """This instance's engine, and another instance's."""
    mine, other = make_engine(postgres_url), make_engine(postgres_url)
    yield mine, other
    mine.dispose()
    other.dispose()


def another_instance_can_lead(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        got = connection.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": KEY}).scalar()
        if got:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": KEY})
        connection.commit()
    return bool(got)


def test_a_leader_that_stops_frees_the_lock_before_its_engine_is_disposed(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    mine, other = engines
    leadership = Leadership(
        mine, on_elected=lambda: None, on_deposed=lambda: None, interval_s=0.1, lock_key=KEY
    )
    leadership.start()
    try:
        wait_for(lambda: leadership.is_leader)
        assert not another_instance_can_lead(other)
    finally:
        leadership.stop()
    assert not leadership.is_leader
    assert another_instance_can_lead(other)


def test_a_leader_that_fails_to_take_office_frees_the_lock(
    engines: tuple[sa.Engine, sa.Engine],
) -> None:
    mine, other = engines
    tries: list[str] = []

    def resume() -> None:
        tries.append("resume")
        raise RuntimeError("the job scheduler could not resume")

    # The failure is the leadership loop's: it stands down, and tries again much later.
    leadership = Leadership(
        mine, on_elected=resume, on_deposed=lambda: None, interval_s=60, lock_key=KEY
    )
    leadership.start()
    try:
        wait_for(lambda: tries)
        wait_for(lambda: not leadership.is_leader)
        wait_for(lambda: another_instance_can_lead(other), timeout_s=5)
    finally:
        leadership.stop()
    assert tries == ["resume"]
