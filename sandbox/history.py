"""opsbot's own history in the demo world: a recent deploy and a flag flip on checkout/prod.

The sandbox's database starts empty each time, so the first alarm would have
no "Changes before this alarm" to show. This writes what opsbot would have
recorded had it made the changes the demo world already shows: 1.3.0 deployed
days ago, 1.4.0 (what prod runs) deployed by Bob minutes ago, and the flag
`new_checkout_flow` (on in AppConfig) turned on by Alice. ECS and AppConfig
are left as they are, except that 1.3.0's task definition revision is
registered, so the Roll back button has a revision to return to. The buttons
then run the real /rollback and /flag paths.
"""

from __future__ import annotations

from datetime import timedelta

from bot.adapters import ecs
from bot.audit import service as audit
from bot.deploys.models import COMPLETED, DEPLOY, Deployment
from bot.deploys.policy import digest_of
from bot.runtime import Runtime
from sandbox import world
from sandbox.ecs import image_uri
from sandbox.world import APP, CONTAINER, Clients


def seed(runtime: Runtime, clients: Clients) -> None:
    """Record the demo history in opsbot's database (once, on a fresh one)."""
    env = world.environment(world.HISTORY_ENV)
    client = clients("ecs")
    service = ecs.describe_service(client, cluster=env.cluster, service=env.service)
    current = ecs.describe_task_definition(client, arn=service.task_definition)
    older = ecs.register_with_image(
        client, current, container=CONTAINER, image=image_uri(world.HISTORY_PREVIOUS_TAG)
    )
    now = runtime.clock.now()
    deployed_at = now - timedelta(minutes=world.HISTORY_DEPLOY_MIN_AGO)
    flagged_at = now - timedelta(minutes=world.HISTORY_FLAG_MIN_AGO)
    current_image = current.image_of(CONTAINER) or ""
    # The ECS deployment that rolled 1.4.0 out is the one Bob's deploy would have started.
    rolled_out = next((r.id for r in service.deployments if r.task_definition == current.arn), None)
    rows = [
        Deployment(
            app=APP,
            env=env.name,
            kind=DEPLOY,
            status=COMPLETED,
            actor=world.HISTORY_FLAGGER,
            tag=world.HISTORY_PREVIOUS_TAG,
            image=image_uri(world.HISTORY_PREVIOUS_TAG),
            digest=digest_of(image_uri(world.HISTORY_PREVIOUS_TAG)) or "",
            task_definition=older.arn,
            outcome="Completed (sandbox history).",
            created_at=now - timedelta(days=3),
            finished_at=now - timedelta(days=3),
        ),
        Deployment(
            app=APP,
            env=env.name,
            kind=DEPLOY,
            status=COMPLETED,
            actor=world.HISTORY_DEPLOYER,
            tag=env.image_tag,
            image=current_image,
            digest=digest_of(current_image) or "",
            previous_image=image_uri(world.HISTORY_PREVIOUS_TAG),
            previous_tag=world.HISTORY_PREVIOUS_TAG,
            previous_task_definition=older.arn,
            task_definition=current.arn,
            ecs_deployment_id=rolled_out,
            outcome="Completed (sandbox history).",
            created_at=deployed_at,
            started_at=deployed_at,
            finished_at=deployed_at + timedelta(minutes=4),
        ),
    ]
    target = f"flag:{APP}/{env.name}"
    with runtime.sessions() as db_session:
        if db_session.query(Deployment).count():
            return  # not a fresh database: its own history stands
        db_session.add_all(rows)
        audit.record(
            db_session,
            at=flagged_at,
            actor=world.HISTORY_FLAGGER,
            action="flag.change",
            target=target,
            outcome="ok",
            detail={
                "flag": world.HISTORY_FLAG,
                "before": {"enabled": False},
                "after": {"enabled": True},
                "deployment": 1,
                # The hosted version the change made: its undo is pinned to it.
                "version": 1,
            },
        )
        audit.record(
            db_session,
            at=flagged_at + timedelta(minutes=2),
            actor="opsbot",
            action="flag.deployment",
            target=target,
            outcome="ok",
            detail={"flag": world.HISTORY_FLAG, "deployment": 1, "state": "COMPLETE"},
        )
        db_session.commit()
