"""ECS's deployment scheduler, played on moto's backend, step by step (for tests).

moto (server mode, in this process) accepts UpdateService but never runs a
rollout: it swaps the service's taskDefinition and leaves its one deployment
as it was. `EcsRollouts` does, openly, what ECS would, on moto's own state:

- `install` wraps moto's UpdateService so that a new task definition (or a
  forced new deployment) starts a new PRIMARY deployment (IN_PROGRESS,
  nothing running yet) and demotes the old one to ACTIVE, as ECS does;
- `progress`, `complete` and `fail` move that deployment as ECS would:
  running and pending counts, rolloutState COMPLETED, or the deployment
  circuit breaker's FAILED with a rollback deployment of the previous
  revision. The failed tasks are real moto tasks, started with RunTask
  (startedBy = the deployment id and group = `service:<name>`, as ECS
  names a service's tasks) and
  stopped with StopTask and ECS's reason, so a client reads them through
  ListTasks and DescribeTasks like any other.

It also fills moto 5 gaps, so a client meets what it would meet on ECS:

- RunTask fails for awsvpc tasks because its NetworkInterface has no
  private_dns_name; `install` adds one;
- ListTasks answers as ECS documents it: tasks whose desired status is
  RUNNING unless desiredStatus says otherwise, startedBy refused beside any
  other filter, desiredStatus included (the docs' "it must be the only
  filter that you use", read strictly: what ECS may refuse), serviceName
  keeping the service's tasks (group `service:<name>`), pages of maxResults
  (100 by default) with a nextToken;
- DescribeTasks refuses more than 100 tasks, as ECS does.

Used by the tests (tests/deploys) and meant for the sandbox console; it
needs moto, a development dependency.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ecs.exceptions import InvalidParameterException
from moto.ecs.models import EC2ContainerServiceBackend, ecs_backends
from moto.ecs.responses import EC2ContainerServiceResponse

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"


# The classes patched while installed (as Any: a patch is not something mypy can type).
_BACKEND: Any = EC2ContainerServiceBackend
_RESPONSE: Any = EC2ContainerServiceResponse
_ENI: Any = NetworkInterface

PAGE = 100  # ListTasks' default and largest maxResults, and DescribeTasks' most tasks
TASK_FILTERS = ("containerInstance", "family", "serviceName", "desiredStatus", "launchType")


def _private_dns_name(eni: Any) -> str:
    return "ip-" + str(eni.private_ip_address).replace(".", "-") + ".ec2.internal"


def _list_tasks(response: Any) -> ActionResult:
    """ListTasks as ECS answers it (see the module docstring); moto's backend does the rest."""
    filters = {name: response._get_param(name) for name in TASK_FILTERS}
    started_by = response._get_param("startedBy")
    if started_by and any(filters.values()):
        raise InvalidParameterException("startedBy must be the only filter of ListTasks.")
    limit = int(response._get_param("maxResults") or PAGE)
    token = str(response._get_param("nextToken") or "0")
    if not 1 <= limit <= PAGE or not token.isdigit():
        raise InvalidParameterException("maxResults or nextToken is not valid.")
    tasks = response.ecs_backend.list_tasks(
        response._get_param("cluster", "default"),
        filters["containerInstance"],
        filters["family"],
        started_by,
        None,  # moto ignores serviceName: filtered below
        filters["desiredStatus"] or "RUNNING",
    )
    if filters["serviceName"]:
        group = "service:" + str(filters["serviceName"]).split("/")[-1]
        tasks = [t for t in tasks if t.group == group]
    if filters["launchType"]:
        tasks = [t for t in tasks if t.launch_type == filters["launchType"]]
    start = int(token)
    page: dict[str, Any] = {"taskArns": [t.task_arn for t in tasks[start : start + limit]]}
    if start + limit < len(tasks):
        page["nextToken"] = str(start + limit)
    return ActionResult(page)


@dataclass
class EcsRollouts:
    """ECS's deployment scheduler, played on moto's backend (see the module docstring)."""

    aws: Callable[[str], Any]  # boto3 client by service name, on the moto server
    network: dict[str, Any] = field(default_factory=dict)  # awsvpcConfiguration for tasks
    account: str = ACCOUNT
    region: str = REGION
    _original: Any = field(default=None, repr=False)
    _original_list_tasks: Any = field(default=None, repr=False)
    _original_describe_tasks: Any = field(default=None, repr=False)
    _patched_eni: bool = field(default=False, repr=False)

    @property
    def backend(self) -> Any:
        return ecs_backends[self.account][self.region]

    def install(self) -> EcsRollouts:
        """Make moto's UpdateService start deployments, and its tasks' APIs answer as ECS's."""
        if self._original is not None:
            return self
        original = EC2ContainerServiceBackend.update_service
        original_describe_tasks = EC2ContainerServiceBackend.describe_tasks
        rollouts = self

        def update_service(backend: Any, properties: dict[str, Any]) -> Any:
            cluster = properties.get("cluster", "default")
            name = str(properties["service"]).split("/")[-1]
            before = backend._get_service(cluster, name).task_definition
            forced = bool(properties.get("force_new_deployment"))
            service = original(backend, properties)
            if service.task_definition != before or forced:
                rollouts._new_deployment(service)
            return service

        def describe_tasks(backend: Any, cluster: str, tasks: list[str]) -> Any:
            if len(tasks) > PAGE:
                raise InvalidParameterException(f"DescribeTasks takes at most {PAGE} tasks.")
            return original_describe_tasks(backend, cluster, tasks)

        self._original = original
        _BACKEND.update_service = update_service
        self._original_describe_tasks = original_describe_tasks
        _BACKEND.describe_tasks = describe_tasks
        self._original_list_tasks = EC2ContainerServiceResponse.list_tasks
        _RESPONSE.list_tasks = _list_tasks
        if not hasattr(NetworkInterface, "private_dns_name"):
            _ENI.private_dns_name = property(_private_dns_name)
            self._patched_eni = True
        return self

    def uninstall(self) -> None:
        """Give moto its own UpdateService, ListTasks and DescribeTasks back."""
        if self._original is not None:
            _BACKEND.update_service = self._original
            _BACKEND.describe_tasks = self._original_describe_tasks
            _RESPONSE.list_tasks = self._original_list_tasks
            self._original = None
        if self._patched_eni:
            del _ENI.private_dns_name
            self._patched_eni = False

    def service(self, cluster: str, name: str = "api") -> Any:
        return self.backend.services[f"{cluster}:{name}"]

    def deployments(self, cluster: str, name: str = "api") -> list[dict[str, Any]]:
        return list(self.service(cluster, name).deployments)

    def primary(self, cluster: str, name: str = "api") -> dict[str, Any]:
        return next(d for d in self.service(cluster, name).deployments if d["status"] == "PRIMARY")

    def _new_deployment(self, service: Any) -> dict[str, Any]:
        for deployment in service.deployments:
            if deployment["status"] == "PRIMARY":
                deployment["status"] = "ACTIVE"
        deployment = self._deployment_of(service, service.task_definition)
        service.deployments.insert(0, deployment)
        return deployment

    def _deployment_of(self, service: Any, task_definition: str) -> dict[str, Any]:
        """A new PRIMARY deployment of `task_definition`, not yet in the service's list."""
        template = service.deployments[0] if service.deployments else {}
        deployment_id = f"ecs-svc/{secrets.randbelow(10**18 - 10**17) + 10**17}"
        now = utcnow()
        return {
            **template,
            "id": deployment_id,
            "status": "PRIMARY",
            "taskDefinition": task_definition,
            "desiredCount": service.desired_count,
            "runningCount": 0,
            "pendingCount": 0,
            "failedTasks": 0,
            "createdAt": now,
            "updatedAt": now,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
        }

    def progress(self, cluster: str, *, running: int, pending: int, name: str = "api") -> None:
        deployment = self.primary(cluster, name)
        deployment["runningCount"] = running
        deployment["pendingCount"] = pending
        deployment["updatedAt"] = utcnow()

    def complete(self, cluster: str, name: str = "api") -> None:
        service = self.service(cluster, name)
        deployment = self.primary(cluster, name)
        deployment.update(
            runningCount=deployment["desiredCount"],
            pendingCount=0,
            rolloutState="COMPLETED",
            rolloutStateReason=f"ECS deployment {deployment['id']} completed.",
            updatedAt=utcnow(),
        )
        service.deployments[:] = [deployment]
        service.running_count = deployment["desiredCount"]
        service.pending_count = 0

    def fail(self, cluster: str, *, reasons: list[str], name: str = "api") -> dict[str, Any]:
        """The circuit breaker: tasks stop for `reasons`; ECS rolls back to the last revision."""
        service = self.service(cluster, name)
        failed = self.primary(cluster, name)
        ecs = self.aws("ecs")
        for reason in reasons:
            [task] = ecs.run_task(
                cluster=cluster,
                taskDefinition=failed["taskDefinition"],
                launchType="FARGATE",
                startedBy=failed["id"],
                group=f"service:{name}",
                networkConfiguration=self.network,
            )["tasks"]
            ecs.stop_task(cluster=cluster, task=task["taskArn"], reason=reason)
        previous = next(d for d in service.deployments if d["status"] == "ACTIVE")
        # A watcher describes the service from another thread at any moment: it must see
        # the rollout either still in progress or already failed and rolled back, never a
        # FAILED primary, so the new deployments are built aside and swapped in at once.
        failed_now = {
            **failed,
            "status": "ACTIVE",
            "failedTasks": len(reasons),
            "runningCount": 0,
            "pendingCount": 0,
            "rolloutState": "FAILED",
            "rolloutStateReason": "ECS deployment circuit breaker: tasks failed to start.",
            "updatedAt": utcnow(),
        }
        rollback = self._deployment_of(service, previous["taskDefinition"])
        service.task_definition = previous["taskDefinition"]
        service.deployments[:] = [rollback, failed_now]
        return rollback
