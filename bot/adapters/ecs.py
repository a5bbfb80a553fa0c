"""Amazon ECS, narrowly: a service's deployments, task definitions, stopped tasks."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.slack_text import code


class ServiceNotFound(Exception):
    pass


class ContainerNotFound(Exception):
    pass


@dataclass(frozen=True)
class Rollout:
    """One of a service's deployments, as describe_services reports it."""

    id: str
    status: str  # PRIMARY | ACTIVE | INACTIVE
    task_definition: str
    rollout_state: str | None  # IN_PROGRESS | COMPLETED | FAILED
    reason: str | None
    desired: int
    running: int
    pending: int
    failed: int
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class ServiceState:
    arn: str
    cluster: str
    name: str
    task_definition: str
    desired: int
    running: int
    pending: int
    deployments: tuple[Rollout, ...]
    events: tuple[str, ...]  # newest first, a few

    @property
    def primary(self) -> Rollout | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)

    def find(self, deployment_id: str | None) -> Rollout | None:
        return next((d for d in self.deployments if d.id == deployment_id), None)


@dataclass(frozen=True)
class TaskDefinition:
    arn: str
    family: str
    revision: int
    body: dict[str, Any]  # as describe_task_definition returns it
    tags: tuple[dict[str, str], ...] = ()

    @property
    def short(self) -> str:
        return f"{self.family}:{self.revision}"

    def container_names(self) -> list[str]:
        return [str(c.get("name")) for c in self.body.get("containerDefinitions") or []]

    def image_of(self, container: str) -> str | None:
        for definition in self.body.get("containerDefinitions") or []:
            if definition.get("name") == container:
                return str(definition.get("image") or "") or None
        return None


@dataclass(frozen=True)
class StoppedTask:
    arn: str
    reason: str
    stop_code: str | None
    stopped_at: datetime | None
    containers: tuple[str, ...]  # "name: exit 1 (reason)"

    @property
    def short_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1][:8]


def _utc(moment: Any) -> datetime | None:
    return moment.astimezone(UTC) if isinstance(moment, datetime) else None


def _rollout(item: dict[str, Any]) -> Rollout:
    return Rollout(
        id=str(item.get("id")),
        status=str(item.get("status") or ""),
        task_definition=str(item.get("taskDefinition") or ""),
        rollout_state=item.get("rolloutState"),
        reason=item.get("rolloutStateReason"),
        desired=int(item.get("desiredCount") or 0),
        running=int(item.get("runningCount") or 0),
        pending=int(item.get("pendingCount") or 0),
        failed=int(item.get("failedTasks") or 0),
        created_at=_utc(item.get("createdAt")),
        updated_at=_utc(item.get("updatedAt")),
    )


def _service(item: dict[str, Any], cluster: str) -> ServiceState:
    return ServiceState(
        arn=str(item.get("serviceArn")),
        cluster=cluster,
        name=str(item.get("serviceName")),
        task_definition=str(item.get("taskDefinition") or ""),
        desired=int(item.get("desiredCount") or 0),
        running=int(item.get("runningCount") or 0),
        pending=int(item.get("pendingCount") or 0),
        deployments=tuple(_rollout(d) for d in item.get("deployments") or []),
        events=tuple(str(e.get("message")) for e in (item.get("events") or [])[:3]),
    )


def describe_service(client: Any, *, cluster: str, service: str) -> ServiceState:
    answer = client.describe_services(cluster=cluster, services=[service])
    found = [s for s in answer.get("services") or [] if s.get("status") != "INACTIVE"]
    if not found:
        raise ServiceNotFound(
            f"ECS service {code(service)} was not found in cluster {code(cluster)}"
        )
    return _service(found[0], cluster)


def describe_task_definition(client: Any, *, arn: str) -> TaskDefinition:
    answer = client.describe_task_definition(taskDefinition=arn, include=["TAGS"])
    body = answer["taskDefinition"]
    return TaskDefinition(
        arn=str(body["taskDefinitionArn"]),
        family=str(body["family"]),
        revision=int(body["revision"]),
        body=body,
        tags=tuple(answer.get("tags") or ()),
    )


def register_with_image(
    client: Any, task_definition: TaskDefinition, *, container: str, image: str
) -> TaskDefinition:
    """A new revision of `task_definition` where only `container`'s image differs.

    Every field RegisterTaskDefinition accepts is copied as it was described
    (the list comes from the API's own model, so new fields are carried too);
    read-only ones (arn, revision, status, registeredAt...) are left out.
    """
    if task_definition.image_of(container) is None:
        names = ", ".join(code(n) for n in task_definition.container_names())
        raise ContainerNotFound(
            f"task definition {code(task_definition.short)} has no container {code(container)} "
            f"(it has {names})"
        )
    accepted = client.meta.service_model.operation_model("RegisterTaskDefinition").input_shape
    body = {
        key: copy.deepcopy(value)
        for key, value in task_definition.body.items()
        if key in accepted.members and key != "tags" and value is not None
    }
    for definition in body["containerDefinitions"]:
        if definition.get("name") == container:
            definition["image"] = image
    if task_definition.tags:
        body["tags"] = [dict(tag) for tag in task_definition.tags]
    answer = client.register_task_definition(**body)
    registered = answer["taskDefinition"]
    return TaskDefinition(
        arn=str(registered["taskDefinitionArn"]),
        family=str(registered["family"]),
        revision=int(registered["revision"]),
        body=registered,
        tags=tuple(answer.get("tags") or task_definition.tags),
    )


def update_service(
    client: Any,
    *,
    cluster: str,
    service: str,
    task_definition: str,
    force_new_deployment: bool = False,
) -> ServiceState:
    """Roll the service to `task_definition`; forced: new tasks even if it already runs it."""
    answer = client.update_service(
        cluster=cluster,
        service=service,
        taskDefinition=task_definition,
        forceNewDeployment=force_new_deployment,
    )
    return _service(answer["service"], cluster)


# ListTasks' default page and DescribeTasks' most tasks in one call.
TASKS_PER_CALL = 100


def stopped_tasks(
    client: Any, *, cluster: str, started_by: str, service: str | None = None
) -> list[StoppedTask]:
    """Tasks a deployment started that have stopped, with ECS's reason.

    ListTasks lists only tasks whose desired status is RUNNING unless told
    STOPPED, and takes startedBy (where ECS names a service task's deployment)
    only as its one filter. So the service's stopped tasks are listed (the
    cluster's, without `service`) and the deployment's are kept once described.
    """
    listing: dict[str, str] = {"cluster": cluster, "desiredStatus": "STOPPED"}
    if service:
        listing["serviceName"] = service
    arns: list[str] = []
    for page in client.get_paginator("list_tasks").paginate(**listing):
        arns.extend(page.get("taskArns") or [])
    stopped: list[StoppedTask] = []
    for start in range(0, len(arns), TASKS_PER_CALL):
        chunk = arns[start : start + TASKS_PER_CALL]
        answer = client.describe_tasks(cluster=cluster, tasks=chunk)
        for task in answer.get("tasks") or []:
            if task.get("startedBy") == started_by:
                stopped.append(_stopped_task(task))
    return stopped


def _stopped_task(task: dict[str, Any]) -> StoppedTask:
    containers = []
    for container in task.get("containers") or []:
        if container.get("exitCode") in (None, 0) and not container.get("reason"):
            continue
        text = f"{container.get('name')}: exit {container.get('exitCode')}"
        if container.get("reason"):
            text += f" ({container['reason']})"
        containers.append(text)
    return StoppedTask(
        arn=str(task.get("taskArn")),
        reason=str(task.get("stoppedReason") or "stopped (no reason given)"),
        stop_code=task.get("stopCode"),
        stopped_at=_utc(task.get("stoppedAt")),
        containers=tuple(containers),
    )
