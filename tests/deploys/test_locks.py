"""Holding an environment on purpose: /deploy lock and unlock, and reminders to the holder."""

from __future__ import annotations

import sqlalchemy as sa

from bot.apps.errors import NotAllowed
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys import locks
from bot.deploys import service as deploys
from bot.deploys.errors import DeployError
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from bot.slack_dates import slack_date
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import RELEASES, T0
from tests.deploys.world import World
from tests.support import wait_for


def test_a_manual_lock_refuses_everyone_but_its_holder(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    said = locks.lock(
        runtime, app="api", env="staging", actor="U0ALICE", reason="database migration"
    )
    assert "`api/staging` is locked" in said
    clock.advance(minutes=5)

    before = world.service_task_definition("staging")
    try:
        submit(runtime, Request(app="api", env="staging", actor="U0BOB", tag="1.0.2"))
    except DeployError as exc:
        message = str(exc)
    else:
        raise AssertionError("deployed through someone else's lock")
    assert message == (
        f'`api/staging` is locked by <@U0ALICE> since {slack_date(T0)}: "database '
        'migration". Only they can deploy it until `/deploy unlock api staging`.'
    )
    assert world.service_task_definition("staging") == before
    try:
        locks.lock(runtime, app="api", env="staging", actor="U0BOB", reason="mine")
    except DeployError as exc:
        assert "already locked by <@U0ALICE>" in str(exc)

    # The holder deploys through their own lock.
    submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))
    assert world.service_task_definition("staging") != before

    # Anyone who may deploy can unlock, and the holder hears about it.
    said = locks.unlock(runtime, app="api", env="staging", actor="U0BOB")
    assert said == (f"Unlocked `api/staging` (it was held by <@U0ALICE> since {slack_date(T0)}).")
    wait_for(
        lambda: any(
            "unlocked by <@U0BOB>" in m.text
            for m in releases.all_messages()
            if m.channel == "U0ALICE"
        )
    )
    notices = wait_for(
        lambda: (
            len(releases.channel_messages(RELEASES)) >= 3 and releases.channel_messages(RELEASES)
        )
    )
    assert any(":lock: `api/staging` locked by <@U0ALICE>" in m.text for m in notices)
    with runtime.sessions() as db:
        records = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action.in_(["deploy.lock", "deploy.unlock"]))
        ).all()
        assert [(r.action, r.actor) for r in records] == [
            ("deploy.lock", "U0ALICE"),
            ("deploy.unlock", "U0BOB"),
        ]
        assert records[1].detail["holder"] == "U0ALICE"
        assert records[1].detail["reason"] == "database migration"


def test_an_old_lock_reminds_its_holder_until_it_is_released(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    locks.lock(runtime, app="api", env="prod", actor="U0ALICE", reason="load test")

    def reminders() -> list[str]:
        return [m.text for m in releases.all_messages() if m.channel == "U0ALICE"]

    clock.advance(minutes=119)
    assert runtime.scheduler.run_due(clock.now()) == []
    clock.advance(minutes=1)  # lock_reminder_after_min: 120
    assert len(runtime.scheduler.run_due(clock.now())) == 1
    [first] = wait_for(reminders)
    assert "You have held `api/prod` locked for 2 h 0 min" in first and "load test" in first
    assert "/deploy unlock api prod" in first

    clock.advance(minutes=60)  # lock_reminder_every_min: 60
    assert len(runtime.scheduler.run_due(clock.now())) == 1
    wait_for(lambda: len(reminders()) == 2)

    locks.unlock(runtime, app="api", env="prod", actor="U0ALICE")
    clock.advance(minutes=60)
    assert len(runtime.scheduler.run_due(clock.now())) == 1  # the job finds no lock and stops
    clock.advance(minutes=600)
    assert runtime.scheduler.run_due(clock.now()) == []
    assert len(reminders()) == 2


def test_locking_needs_deploy_rights_and_a_reason(runtime: Runtime) -> None:
    for actor, reason, expected in [
        ("U0CAROL", "mine", "You may not lock `api/staging`. Allowed: <@U0ALICE>, <@U0BOB>."),
        ("U0ALICE", "  ", "Say why: `/deploy lock api staging &lt;reason&gt;`."),
    ]:
        try:
            locks.lock(runtime, app="api", env="staging", actor=actor, reason=reason)
        except Exception as exc:
            assert str(exc) == expected
        else:
            raise AssertionError(f"{actor} locked api/staging")


def test_a_lock_or_unlock_without_the_right_leaves_only_an_audit_line(runtime: Runtime) -> None:
    locks.lock(runtime, app="api", env="staging", actor="U0ALICE", reason="load test")
    for attempt in (
        lambda: locks.lock(runtime, app="api", env="staging", actor="U0CAROL", reason="mine"),
        lambda: locks.unlock(runtime, app="api", env="staging", actor="U0CAROL"),
    ):
        try:
            attempt()
        except NotAllowed as exc:
            assert "You may not" in str(exc) and "Allowed: <@U0ALICE>, <@U0BOB>." in str(exc)
        else:
            raise AssertionError("Carol changed the lock of api/staging")
    with runtime.sessions() as db:
        records = db.scalars(sa.select(AuditRecord).order_by(AuditRecord.id)).all()
        held = deploys.manual_lock(db, app="api", env="staging")
    assert [(r.actor, r.action, r.outcome) for r in records] == [
        ("U0ALICE", "deploy.lock", "ok"),
        ("U0CAROL", "deploy.lock", "refused"),
        ("U0CAROL", "deploy.unlock", "refused"),
    ]
    assert records[2].detail["reason"].startswith("You may not unlock `api/staging`")
    assert held is not None and held.holder == "U0ALICE"
