"""`/deploy lock` while a deployment runs: said in the answer, and never both unseen.

A start reads the manual lock and then takes the deploy lock; a `/deploy lock`
committed in between would let a deploy start under a lock whose holder was
told that nobody else can deploy. Both are serialized per environment.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.deploys import locks
from bot.deploys import service as deploys
from bot.deploys.errors import DeployError
from bot.deploys.models import LOCK_MANUAL
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from tests.deploys.world import World
from tests.support import wait_for


def test_a_lock_taken_while_a_deploy_rolls_out_says_which_one_goes_on(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    accepted = submit(runtime, Request(app="api", env="staging", actor="U0BOB", tag="1.0.2"))
    said = locks.lock(runtime, app="api", env="staging", actor="U0ALICE", reason="incident")
    assert "`api/staging` is locked" in said
    assert (
        f"Deployment #{accepted.deployment_id} (`api` `1.0.2`) by <@U0BOB> is rolling out: "
        "the lock does not stop it." in said
    )

    # Said again when the holder changes the reason; not once the deployment ended.
    said = locks.lock(runtime, app="api", env="staging", actor="U0ALICE", reason="still")
    assert f"Deployment #{accepted.deployment_id}" in said
    world.rollouts.complete("staging")
    clock.advance(seconds=10)
    runtime.scheduler.run_due(clock.now())
    locks.unlock(runtime, app="api", env="staging", actor="U0ALICE")
    said = locks.lock(runtime, app="api", env="staging", actor="U0ALICE", reason="again")
    assert "Deployment #" not in said


def _waiting_on_an_advisory_lock(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        return int(
            db.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
                )
            )
            or 0
        )


def test_a_deploy_started_while_a_lock_is_being_taken_waits_for_it_and_is_refused(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    with runtime.sessions() as db:
        if db.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite serializes every write transaction (BEGIN IMMEDIATE)")
    before = world.service_task_definition("staging")
    outcome: list[object] = []

    def deploy() -> None:
        try:
            outcome.append(
                submit(runtime, Request(app="api", env="staging", actor="U0BOB", tag="1.0.2"))
            )
        except DeployError as exc:
            outcome.append(exc)

    # `/deploy lock` at work, as `locks.lock` does it: serialized, then the lock inserted.
    with runtime.sessions() as db:
        locks.serialize_locks(db, app="api", env="staging")
        deploys.take_lock(
            db,
            app="api",
            env="staging",
            kind=LOCK_MANUAL,
            holder="U0ALICE",
            reason="incident",
            now=clock.now() - timedelta(seconds=1),
        )
        started = threading.Thread(target=deploy)
        started.start()
        # The deploy either ran through (the lock unseen) or waits for this transaction.
        wait_for(lambda: outcome or _waiting_on_an_advisory_lock(runtime))
        db.commit()
    started.join()
    [result] = outcome
    assert isinstance(result, DeployError), result
    assert "locked by <@U0ALICE>" in str(result)
    assert world.service_task_definition("staging") == before
