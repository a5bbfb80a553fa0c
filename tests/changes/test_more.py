""" "… and N more" counts every change of the window left out, and always fits the section.

The view lists the newest ten of opsbot's changes and counts the rest in the
database; deploys seen on ECS share the ten lines with them, newest first,
and the ones left out are counted too; lines are fitted to Slack's 3,000
characters before the pointer to `/deploy history`, which always stays.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.audit import service as audit
from bot.changes import render
from bot.changes.outside import LOOKED, OutsideView, Seen
from bot.changes.service import ChangeItem, ChangesView, changes_view
from bot.clock import ManualClock
from bot.deploys import service
from bot.deploys.models import COMPLETED
from bot.runtime import Runtime

POINTER = ": `/deploy history api prod`"


def deploys(runtime: Runtime, now: datetime, count: int) -> None:
    with runtime.sessions() as db:
        for i in range(count):
            d = service.create(
                db,
                now=now - timedelta(minutes=100 - i),
                app="api",
                env="prod",
                kind="deploy",
                actor="U0ALICE",
                tag=f"1.0.{i}",
                image=f"repo:1.0.{i}",
                digest="sha256:" + "a" * 64,
                previous_image=None,
                previous_tag=None,
                previous_task_definition=None,
                task_definition=f"arn:td/api-prod:{i}",
                rollback_of=None,
                channel=None,
                force_reason=None,
            )
            d.status = COMPLETED
        db.commit()


def flag_changes(runtime: Runtime, now: datetime, count: int) -> None:
    with runtime.sessions() as db:
        for i in range(count):
            on = i % 2 == 0
            audit.record(
                db,
                at=now - timedelta(minutes=50 - i),
                actor="U0ALICE",
                action="flag.change",
                target="flag:api/prod",
                outcome="ok",
                detail={
                    "flag": "apple_pay",
                    "before": {"enabled": not on},
                    "after": {"enabled": on},
                    "version": i + 2,
                },
            )
        db.commit()


def view_of(runtime: Runtime, now: datetime) -> ChangesView:
    with runtime.sessions() as db:
        return changes_view(
            db, app="api", env="prod", alarm_at=now, window_min=120, incident_id=None, now=now
        )


def section(blocks: list[dict[str, object]]) -> str:
    text = blocks[0]["text"]
    assert isinstance(text, dict)
    return str(text["text"])


def test_more_counts_every_change_of_the_window_not_listed(
    runtime: Runtime, clock: ManualClock
) -> None:
    now = clock.now()
    deploys(runtime, now, 40)
    flag_changes(runtime, now, 15)
    view = view_of(runtime, now)
    assert len(view.items) == 10
    assert view.more == 45  # 40 deploys and 15 flag changes, ten listed
    assert all(item.kind == "flag" for item in view.items)  # the newest


def test_deploys_seen_on_ecs_share_the_lines_and_are_counted_in_more(
    runtime: Runtime, clock: ManualClock
) -> None:
    now = clock.now()
    deploys(runtime, now, 40)
    view = view_of(runtime, now)
    seen = tuple(
        Seen(
            task_definition=f"api-prod-outside:{i}", image=f"img-{i}", at=now - timedelta(minutes=i)
        )
        for i in range(50)
    )
    outside = OutsideView(state=LOOKED, seen=seen, looked_at=now)
    blocks = render.changes_blocks(view, incident_id=1, outside=outside)
    text = section(blocks)
    lines = text.split("\n")
    assert len(lines) == 1 + 10 + 1  # the head, ten lines, "… and N more"
    assert all("seen on ECS, not made by opsbot_" in line for line in lines[1:11])
    assert lines[-1] == ("… and 80 more (40 of them seen on ECS, not made by opsbot)" + POINTER)
    # None of opsbot's changes is listed: none has a button on the message.
    assert [b["type"] for b in blocks] == ["section"]


def item(i: int, at: datetime) -> ChangeItem:
    return ChangeItem(
        key=f"deploy:{i}",
        kind="deploy",
        at=at - timedelta(minutes=i),
        actor="U0ALICE",
        subject=f"1.0.{i}-" + "x" * 100,
        before="1.0.0-" + "y" * 100,
        after=None,
        status="completed",
        no_undo="replaced by " + "`" + "z" * 110 + "`",
    )


def test_lines_are_fitted_before_the_section_is_clipped_and_the_pointer_stays(
    clock: ManualClock,
) -> None:
    now = clock.now()
    view = ChangesView(
        app="api", env="prod", window_min=120, items=[item(i, now) for i in range(10)], more=5
    )
    text = section(render.changes_blocks(view, incident_id=1))
    assert len(text) <= 3000
    shown = text.count(":rocket:")
    assert 0 < shown < 10
    assert text.endswith(f"… and {5 + 10 - shown} more" + POINTER)
