"""The demo ECS clusters and services, and the rollout driver moto lacks.

Seeding goes through boto3: a cluster per environment, a task definition whose
container image is pinned by digest (`repo@sha256:...`), and a service running
it with the deployment circuit breaker on.

moto records an `update_service` but never rolls anything out: the service's
one deployment keeps its old task definition and state forever. In the sandbox
only, `RolloutDriver` fills that gap through moto's own backend objects:

- at `update_service` with a new task definition (or a forced new deployment)
  it adds what ECS adds at once, a PRIMARY deployment `IN_PROGRESS` with the new
  task definition, the old one becoming ACTIVE, so the API's answer is ECS's;
- a background thread then brings tasks up over `rollout_s` seconds and ends the
  deployment `COMPLETED` (old deployments drained, "reached a steady state"), or,
  for an image whose tasks crash at start (see ecr.IMAGES), `FAILED` the way the
  circuit breaker does, rolling the service back to the previous task definition.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox import ecr
from sandbox.world import (
    ACCOUNT,
    APP,
    CONTAINER,
    ENVIRONMENTS,
    REGION,
    REGISTRY,
    REPOSITORY,
    Clients,
)

log = logging.getLogger(__name__)

CIRCUIT_BREAKER = {"deploymentCircuitBreaker": {"enable": True, "rollback": True}}


def image_uri(tag: str) -> str:
    return f"{REGISTRY}/{REPOSITORY}@{ecr.digest_of(tag)}"


def seed(clients: Clients) -> None:
    ecs = clients("ecs")
    for env in ENVIRONMENTS:
        ecs.create_cluster(clusterName=env.cluster)
        task = ecs.register_task_definition(
            family=f"{APP}-{env.name}",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            executionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{APP}-{env.name}-execution",
            taskRoleArn=f"arn:aws:iam::{ACCOUNT}:role/{APP}-{env.name}-task",
            containerDefinitions=[
                {
                    "name": CONTAINER,
                    "image": image_uri(env.image_tag),
                    "essential": True,
                    "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                    "environment": [{"name": "APP_ENV", "value": env.name}],
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": f"/ecs/{APP}-{env.name}",
                            "awslogs-region": REGION,
                            "awslogs-stream-prefix": CONTAINER,
                        },
                    },
                }
            ],
        )
        ecs.create_service(
            cluster=env.cluster,
            serviceName=env.service,
            taskDefinition=task["taskDefinition"]["taskDefinitionArn"],
            desiredCount=env.desired_count,
            launchType="FARGATE",
            deploymentConfiguration={
                **CIRCUIT_BREAKER,
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
            },
        )


def _now() -> datetime:
    """Naive UTC, as moto keeps its ECS times."""
    return datetime.now(UTC).replace(tzinfo=None)


def _age_s(moment: datetime) -> float:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (_now() - moment).total_seconds()


def _revise(service: Any, deployment: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """`deployment` with `changes`, as a new dict in a new list.

    moto answers describe_services on its own threads, reading a deployment key
    by key without this driver's lock: changed in place, a deployment could be
    read half old, half new (COMPLETED with 0 tasks running). A deployment once
    published is never changed; it is replaced.
    """
    revised = {**deployment, **changes}
    service.deployments = [revised if d is deployment else d for d in service.deployments]
    return revised


class RolloutDriver:
    """Moves moto's ECS deployments along, as ECS would, in the sandbox only."""

    def __init__(
        self,
        *,
        rollout_s: float = 8.0,
        tick_s: float = 0.25,
        failing_images: Callable[[], set[str]] | None = None,
    ) -> None:
        self.rollout_s = rollout_s
        self.tick_s = tick_s
        # Digests whose tasks crash at start.
        self.failing_images = failing_images or (
            lambda: {ecr.image_digest(i.tags[0]) for i in ecr.IMAGES if not i.starts}
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backend: Any = None
        self._original_update: Any = None
        self.lock = threading.RLock()

    # -- life --------------------------------------------------------------------

    def start(self) -> RolloutDriver:
        from moto.ecs.models import ecs_backends

        self._backend = ecs_backends[ACCOUNT][REGION]
        self._original_update = self._backend.update_service
        self._backend.update_service = self._update_service
        self._thread = threading.Thread(target=self._run, name="sandbox-ecs-rollouts", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._backend is not None:
            # Uninstall: the backend answers as plain moto again.
            vars(self._backend).pop("update_service", None)

    # -- update_service --------------------------------------------------------------

    def _update_service(self, properties: dict[str, Any]) -> Any:
        cluster = properties.get("cluster", "default")
        name = str(properties.get("service", "")).split("/")[-1]
        forced = bool(properties.get("force_new_deployment"))
        with self.lock:
            before = self._backend._get_service(cluster, name).task_definition
            service = self._original_update(properties)
            changed = service.task_definition != before
            if changed or forced:
                self._begin(service, reason="update_service")
            return service

    def _begin(self, service: Any, *, reason: str) -> dict[str, Any]:
        now = _now()
        earlier = [
            {**d, "status": "ACTIVE", "updatedAt": now} if d["status"] == "PRIMARY" else d
            for d in service.deployments
        ]
        deployment_id = f"ecs-svc/{uuid.uuid4().int % 10**19:019d}"
        deployment = {
            "id": deployment_id,
            "status": "PRIMARY",
            "taskDefinition": service.task_definition,
            "desiredCount": service.desired_count,
            "pendingCount": 0,
            "runningCount": 0,
            "failedTasks": 0,
            "createdAt": now,
            "updatedAt": now,
            "launchType": service.launch_type,
            "platformVersion": service.platform_version or "1.4.0",
            "platformFamily": "Linux",
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
        }
        service.deployments = [deployment, *earlier]
        self._event(service, f"(service {service.name}) has started 0 tasks: ({reason}).")
        return deployment

    # -- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.tick()
            except Exception:
                log.exception("sandbox rollout driver: tick failed")

    def tick(self) -> None:
        """Advance every rollout in progress by what the elapsed time allows."""
        with self.lock:
            for service in list(self._backend.services.values()):
                primary = next((d for d in service.deployments if d["status"] == "PRIMARY"), None)
                if primary is None or primary.get("rolloutState") != "IN_PROGRESS":
                    continue
                self._advance(service, primary)

    def _advance(self, service: Any, primary: dict[str, Any]) -> None:
        now = _now()
        elapsed = _age_s(primary["createdAt"])
        desired = int(primary["desiredCount"])
        crashing = self._crashes(primary["taskDefinition"])
        if elapsed < self.rollout_s:
            fraction = elapsed / self.rollout_s
            if crashing:
                counts = {"pendingCount": desired, "failedTasks": int(fraction * 3 * desired)}
            else:
                running = min(desired, int(fraction * desired))
                counts = {"runningCount": running, "pendingCount": desired - running}
            _revise(service, primary, **counts, updatedAt=now)
            return
        if crashing:
            self._fail(service, primary)
        else:
            self._complete(service, primary)

    def _complete(self, service: Any, primary: dict[str, Any]) -> None:
        now = _now()
        desired = int(primary["desiredCount"])
        completed = _revise(
            service,
            primary,
            runningCount=desired,
            pendingCount=0,
            updatedAt=now,
            rolloutState="COMPLETED",
            rolloutStateReason=f"ECS deployment {primary['id']} completed.",
        )
        service.deployments = [completed]  # the older ones drained
        service.running_count, service.pending_count = desired, 0
        self._event(
            service, f"(service {service.name}) (deployment {primary['id']}) deployment completed."
        )
        self._event(service, f"(service {service.name}) has reached a steady state.")

    def _fail(self, service: Any, primary: dict[str, Any]) -> None:
        now = _now()
        previous = next((d for d in service.deployments if d["status"] == "ACTIVE"), None)
        failed = _revise(
            service,
            primary,
            status="ACTIVE",
            runningCount=0,
            pendingCount=0,
            failedTasks=max(int(primary.get("failedTasks") or 0), 3),
            updatedAt=now,
            rolloutState="FAILED",
            rolloutStateReason="ECS deployment circuit breaker: tasks failed to start.",
        )
        self._event(
            service,
            f"(service {service.name}) (deployment {primary['id']}) deployment failed: "
            "tasks failed to start.",
        )
        if previous is None:
            return
        # The circuit breaker rolls back: a new deployment of the last good task definition.
        service.deployments = [failed]
        service.task_definition = previous["taskDefinition"]
        rollback = self._begin(service, reason="circuit breaker rollback")
        self._event(
            service,
            f"(service {service.name}) rolling back to deployment {previous['id']} "
            f"as {rollback['id']}.",
        )

    def _crashes(self, task_definition_arn: str) -> bool:
        try:
            task = self._backend.describe_task_definition(task_definition_arn)
        except Exception:
            return False
        failing = self.failing_images()
        return any(
            str(c.get("image", "")).rsplit("@", 1)[-1] in failing
            for c in task.container_definitions
        )

    def _event(self, service: Any, message: str) -> None:
        service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": _now(), "message": message})
        del service.events[100:]

    def settle_now(self) -> None:
        """Finish every rollout in progress at once (the world's own first deployments)."""
        with self.lock:
            for service in list(self._backend.services.values()):
                for deployment in list(service.deployments):
                    if deployment.get("rolloutState") == "IN_PROGRESS":
                        started = _now() - timedelta(seconds=self.rollout_s + 1)
                        _revise(service, deployment, createdAt=started)
            self.tick()
