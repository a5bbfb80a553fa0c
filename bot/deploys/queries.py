"""Read-only answers: what runs now, what ran before, which images exist."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from bot.adapters import ecr, ecs
from bot.approvals import service as approvals
from bot.approvals.models import PendingAction
from bot.apps.registry import get_app_or_raise, get_target_or_raise
from bot.deploys import service
from bot.deploys.errors import DeployError, aws_call
from bot.deploys.models import DeployLock, Deployment
from bot.deploys.policy import digest_of, tag_of
from bot.slack_text import code

if TYPE_CHECKING:
    from bot.apps.services import Services


@dataclass(frozen=True)
class RunningRevision:
    """One of the service's deployments: what it runs and who put it there."""

    ecs_status: str  # PRIMARY | ACTIVE
    task_definition: str
    image: str | None
    rollout_state: str | None
    running: int
    desired: int
    pending: int
    since: datetime | None
    by: str | None  # actor of the opsbot deployment, None if made outside opsbot
    deployment: Deployment | None


@dataclass(frozen=True)
class StatusView:
    app: str
    env: str
    revisions: list[RunningRevision]
    active: Deployment | None
    manual_lock: DeployLock | None
    waiting: list[PendingAction]

    @property
    def label(self) -> str:
        return f"{self.app}/{self.env}"


@dataclass(frozen=True)
class Release:
    image: ecr.Image
    running_in: list[str] = field(default_factory=list)  # environment names


@dataclass(frozen=True)
class ReleasesView:
    app: str
    by_repository: dict[str, list[Release]]
    problems: list[str]  # environments that could not be read


def status(services: Services, *, app: str, env: str) -> StatusView:
    target = get_target_or_raise(services.config, app=app, env=env)
    client = services.aws.get("ecs")
    with aws_call("read the service"):
        state = ecs.describe_service(
            client, cluster=target.settings.cluster, service=target.settings.service
        )
        images = {
            d.task_definition: ecs.describe_task_definition(client, arn=d.task_definition).image_of(
                target.settings.container
            )
            for d in state.deployments
            if d.status in ("PRIMARY", "ACTIVE")
        }
    revisions = []
    with services.sessions() as db_session:
        for rollout in state.deployments:
            if rollout.status not in ("PRIMARY", "ACTIVE"):
                continue
            made = service.by_task_definition(
                db_session, app=app, env=env, task_definition=rollout.task_definition
            )
            since = rollout.created_at
            if made is not None:
                since = made.finished_at or made.started_at or since
            revisions.append(
                RunningRevision(
                    ecs_status=rollout.status,
                    task_definition=rollout.task_definition,
                    image=images.get(rollout.task_definition),
                    rollout_state=rollout.rollout_state,
                    running=rollout.running,
                    desired=rollout.desired,
                    pending=rollout.pending,
                    since=since,
                    by=made.actor if made else None,
                    deployment=made,
                )
            )
        return StatusView(
            app=app,
            env=env,
            revisions=revisions,
            active=service.active_for(db_session, app=app, env=env),
            manual_lock=service.manual_lock(db_session, app=app, env=env),
            waiting=approvals.list_pending(db_session, target=f"deploy:{app}/{env}"),
        )


def history(services: Services, *, app: str, env: str, limit: int) -> list[Deployment]:
    get_target_or_raise(services.config, app=app, env=env)
    with services.sessions() as db_session:
        return service.history(db_session, app=app, env=env, limit=limit)


def _running_images(services: Services, *, app: str, env: str) -> list[str]:
    target = get_target_or_raise(services.config, app=app, env=env)
    client = services.aws.get("ecs")
    state = ecs.describe_service(
        client, cluster=target.settings.cluster, service=target.settings.service
    )
    found = []
    for rollout in state.deployments:
        if rollout.status in ("PRIMARY", "ACTIVE") and rollout.running + rollout.pending > 0:
            image = ecs.describe_task_definition(client, arn=rollout.task_definition).image_of(
                target.settings.container
            )
            if image:
                found.append(image)
    return found


def releases(services: Services, *, app: str) -> ReleasesView:
    """The newest images of the app's repositories, and which environment runs each."""
    config = get_app_or_raise(services.config, app=app)
    limit = services.config.deploys.releases_count
    by_repository: dict[str, list[Release]] = {}
    problems: list[str] = []
    running: dict[str, list[str]] = {}
    for env, settings in config.environments.items():
        try:
            with aws_call(f"read the service of {code(f'{app}/{env}')}"):
                running[env] = _running_images(services, app=app, env=env)
        except DeployError as exc:
            problems.append(f"{env}: {exc}")
            running[env] = []
        by_repository.setdefault(settings.repository, [])
    for repository in by_repository:
        with aws_call(f"list the images of {code(repository)}"):
            images = ecr.recent_images(services.aws.get("ecr"), repository=repository, limit=limit)
        rows = []
        for image in images:
            envs = [
                env
                for env, settings in config.environments.items()
                if settings.repository == repository
                and any(_same_image(ref, image) for ref in running[env])
            ]
            rows.append(Release(image=image, running_in=envs))
        by_repository[repository] = rows
    return ReleasesView(app=app, by_repository=by_repository, problems=problems)


def _same_image(reference: str, image: ecr.Image) -> bool:
    digest = digest_of(reference)
    if digest is not None:
        return digest == image.digest
    tag = tag_of(reference)
    return tag is not None and tag in image.tags
