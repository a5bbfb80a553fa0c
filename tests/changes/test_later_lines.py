"""What the changes view reads after its oldest listed flag change, to tell what became of
each: never the refused requests anyone may make, and a bounded number of lines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.changes.service import LATER_READ, changes_view
from bot.db.engine import make_sessionmaker

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
ALARM_AT = T0 + timedelta(hours=1)
TARGET = "flag:api/prod"


@pytest.fixture
def loaded() -> Iterator[list[int]]:
    """The ids of the audit lines the ORM builds, as they are read."""
    ids: list[int] = []

    def count(target: AuditRecord, _context: Any) -> None:
        ids.append(target.id)

    sa.event.listen(AuditRecord, "load", count)
    yield ids
    sa.event.remove(AuditRecord, "load", count)


def line(at: datetime, *, actor: str, outcome: str, flag: str, **detail: Any) -> dict[str, Any]:
    return {
        "at": at,
        "actor": actor,
        "action": "flag.change",
        "target": TARGET,
        "outcome": outcome,
        "detail": {"flag": flag, **detail},
    }


def turned_on(at: datetime, *, flag: str, version: int, actor: str = "U0ALICE") -> dict[str, Any]:
    return line(
        at,
        actor=actor,
        outcome="ok",
        flag=flag,
        before={"enabled": False},
        after={"enabled": True},
        version=version,
        deployment=version - 1,
    )


def view(engine: sa.Engine) -> Any:
    with make_sessionmaker(engine)() as db:
        return changes_view(
            db,
            app="api",
            env="prod",
            alarm_at=ALARM_AT,
            window_min=120,
            incident_id=None,
            now=ALARM_AT,
        )


def test_refused_requests_are_never_read(engine: sa.Engine, loaded: list[int]) -> None:
    with make_sessionmaker(engine)() as db:
        db.execute(sa.insert(AuditRecord), [turned_on(T0, flag="apple_pay", version=2)])
        # Any member may ask /flag of api prod and be refused: each refusal is audited.
        refusals = [
            line(
                T0 + timedelta(seconds=1 + i),
                actor="U0MALLORY",
                outcome="refused",
                flag="apple_pay",
                asked="apple_pay off",
                after={"enabled": False},
                reason="You may not change feature flags of `api/prod`",
            )
            for i in range(50)
        ]
        db.execute(sa.insert(AuditRecord), refusals)
        db.commit()
    seen = view(engine)
    assert [(i.subject, i.undo is not None, i.no_undo) for i in seen.items] == [
        ("apple_pay", True, None)
    ]
    assert loaded == [1]  # the change listed, and nothing of the refusals


def test_the_lines_read_after_the_listed_changes_are_bounded(
    engine: sa.Engine, loaded: list[int]
) -> None:
    with make_sessionmaker(engine)() as db:
        db.execute(sa.insert(AuditRecord), [turned_on(T0, flag="apple_pay", version=2)])
        # Changes made since the alarm, many of them (an incident open for days).
        since = [
            turned_on(ALARM_AT + timedelta(minutes=1 + i), flag="banner", version=3 + i)
            for i in range(LATER_READ + 20)
        ]
        db.execute(sa.insert(AuditRecord), since)
        db.commit()
    seen = view(engine)
    assert len(loaded) <= 1 + LATER_READ
    # The newest of them is read: AppConfig's profile moved on since the listed change.
    (item,) = seen.items
    assert item.undo is None
    assert item.no_undo == "the flags were changed since (`banner` by <@U0ALICE>): use `/flag off`"
