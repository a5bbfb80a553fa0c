"""A small AWS world on moto server for the deploy tests, and the ECS behaviour moto lacks.

Seeded through the AWS APIs (boto3 against the moto server): a VPC, an ECR
repository with images pushed from real manifests (so digests exist) and
their scans, two ECS clusters with a Fargate task definition and service each.

moto never runs an ECS rollout, so `EcsRollouts` stands in for ECS's
deployment scheduler, honestly and visibly, on moto's own backend state (the
server runs in this process):

- `install` wraps moto's UpdateService so that a new task definition starts a
  new PRIMARY deployment (IN_PROGRESS, nothing running yet) and demotes the
  old one to ACTIVE, as ECS does. moto only swaps the service's
  taskDefinition and leaves its one deployment untouched.
- `progress`, `complete`, `fail` move that deployment as ECS would: running
  and pending counts, rolloutState COMPLETED, or the circuit breaker's FAILED
  with a rollback deployment of the previous revision. The failed tasks are
  real moto tasks, started with RunTask (startedBy = the deployment id, as ECS
  names a service's tasks) and stopped with StopTask and ECS's reason, so the
  bot reads them through ListTasks and DescribeTasks.

Two moto gaps are filled on the side: moto 5 stamps ECR pushes with the wall
clock to the second (the seed spaces them a minute apart so "most recent" is
defined), and its RunTask fails for awsvpc tasks (its NetworkInterface lacks
private_dns_name: `install` adds it).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from moto.core.utils import utcnow
from moto.ec2.models.elastic_network_interfaces import NetworkInterface
from moto.ecr.models import ecr_backends
from moto.ecs.models import EC2ContainerServiceBackend, ecs_backends

ACCOUNT = "123456789012"
REGION = "us-east-1"
REPOSITORY = "api"
TAGS = ["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"]
# What each tag's ECR scan found (None: never scanned).
FINDINGS: dict[str, dict[str, int] | None] = {
    "1.0.0": {},
    "1.0.1": {"MEDIUM": 2},
    "1.0.2": {"LOW": 1, "HIGH": 1},
    "1.0.3": {"CRITICAL": 2, "HIGH": 3},
    "1.0.4": None,
}
EXEC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/api-execution"
TASK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/api-task"


def manifest(n: int) -> str:
    """A Docker image manifest (schema 2) whose layers make a distinct digest."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7000 + n,
                "digest": f"sha256:{n:064x}",
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 30_000_000 + n,
                    "digest": f"sha256:{(n + 1) * 7919:064x}",
                }
            ],
        }
    )


def task_definition(family: str, image: str) -> dict[str, Any]:
    """A Fargate task definition with more than an image in it."""
    return {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "512",
        "memory": "1024",
        "executionRoleArn": EXEC_ROLE,
        "taskRoleArn": TASK_ROLE,
        "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "ARM64"},
        "ephemeralStorage": {"sizeInGiB": 30},
        "volumes": [{"name": "scratch"}],
        "tags": [{"key": "team", "value": "core"}, {"key": "app", "value": "api"}],
        "containerDefinitions": [
            {
                "name": "app",
                "image": image,
                "essential": True,
                "cpu": 384,
                "memory": 768,
                "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
                "environment": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "PORT", "value": "8080"},
                ],
                "secrets": [
                    {
                        "name": "DATABASE_URL",
                        "valueFrom": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/api/db-url",
                    }
                ],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": f"/ecs/{family}",
                        "awslogs-region": REGION,
                        "awslogs-stream-prefix": "app",
                    },
                },
                "healthCheck": {
                    "command": ["CMD-SHELL", "curl -fsS localhost:8080/healthz"],
                    "interval": 15,
                    "retries": 3,
                },
                "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/tmp"}],
            },
            {
                "name": "log-router",
                "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0",
                "essential": False,
                "cpu": 128,
                "memory": 256,
            },
        ],
    }


@dataclass
class EcsRollouts:
    """ECS's deployment scheduler, played on moto's backend (see the module docstring)."""

    aws: Callable[[str], Any]
    network: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> Any:
        return ecs_backends[ACCOUNT][REGION]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = EC2ContainerServiceBackend.update_service
        rollouts = self

        def update_service(backend: Any, properties: dict[str, Any]) -> Any:
            cluster = properties.get("cluster", "default")
            name = str(properties["service"]).split("/")[-1]
            before = backend._get_service(cluster, name).task_definition
            service = original(backend, properties)
            if service.task_definition != before:
                rollouts._new_deployment(service)
            return service

        monkeypatch.setattr(EC2ContainerServiceBackend, "update_service", update_service)
        monkeypatch.setattr(
            NetworkInterface,
            "private_dns_name",
            property(
                lambda eni: "ip-" + eni.private_ip_address.replace(".", "-") + ".ec2.internal"
            ),
            raising=False,
        )

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
        template = service.deployments[0] if service.deployments else {}
        deployment_id = f"ecs-svc/{random.randint(10**17, 10**18 - 1)}"
        now = utcnow()
        deployment = {
            **template,
            "id": deployment_id,
            "status": "PRIMARY",
            "taskDefinition": service.task_definition,
            "desiredCount": service.desired_count,
            "runningCount": 0,
            "pendingCount": 0,
            "failedTasks": 0,
            "createdAt": now,
            "updatedAt": now,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
        }
        service.deployments.insert(0, deployment)
        return deployment

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
                networkConfiguration=self.network,
            )["tasks"]
            ecs.stop_task(cluster=cluster, task=task["taskArn"], reason=reason)
        previous = next(d for d in service.deployments if d["status"] == "ACTIVE")
        failed.update(
            failedTasks=len(reasons),
            runningCount=0,
            pendingCount=0,
            rolloutState="FAILED",
            rolloutStateReason="ECS deployment circuit breaker: tasks failed to start.",
            updatedAt=utcnow(),
        )
        service.task_definition = previous["taskDefinition"]
        rollback = self._new_deployment(service)
        failed["status"] = "ACTIVE"
        service.deployments[:] = [rollback, failed]
        return rollback


@dataclass
class World:
    aws: Callable[[str], Any]
    rollouts: EcsRollouts
    repository_uri: str
    digests: dict[str, str]
    task_definitions: dict[str, str]  # cluster -> the revision its service runs at first

    def image(self, tag: str) -> str:
        return f"{self.repository_uri}@{self.digests[tag]}"

    def describe_task_definition(self, arn: str) -> dict[str, Any]:
        answer = self.aws("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])
        return {**answer["taskDefinition"], "tags": answer.get("tags", [])}

    def service_task_definition(self, cluster: str) -> str:
        answer = self.aws("ecs").describe_services(cluster=cluster, services=["api"])
        return str(answer["services"][0]["taskDefinition"])

    def revisions(self, family: str) -> list[str]:
        answer = self.aws("ecs").list_task_definitions(familyPrefix=family)
        return list(answer["taskDefinitionArns"])


def _scan_result(digest: str, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "registryId": ACCOUNT,
        "repositoryName": REPOSITORY,
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {
            "status": "COMPLETE",
            "description": "The scan was completed successfully.",
        },
        "imageScanFindings": {
            "imageScanCompletedAt": "2026-11-25T09:00:00Z",
            "findingSeverityCounts": counts,
            "findings": [],
        },
    }


def build_world(moto_url: str, aws: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch) -> World:
    httpx.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    ec2, ecr, ecs = aws("ec2"), aws("ecr"), aws("ecs")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="api", Description="api tasks", VpcId=vpc)[
        "GroupId"
    ]
    network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}
    rollouts = EcsRollouts(aws=aws, network=network)
    rollouts.install(monkeypatch)

    uri = ecr.create_repository(
        repositoryName=REPOSITORY, imageScanningConfiguration={"scanOnPush": True}
    )["repository"]["repositoryUri"]
    digests: dict[str, str] = {}
    pushed = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    for n, tag in enumerate(TAGS):
        image = ecr.put_image(repositoryName=REPOSITORY, imageManifest=manifest(n), imageTag=tag)
        digests[tag] = image["image"]["imageId"]["imageDigest"]
        stored = next(
            i
            for i in ecr_backends[ACCOUNT][REGION].repositories[REPOSITORY].images
            if i.image_digest == digests[tag]
        )
        stored.image_pushed_at = int((pushed + timedelta(minutes=n)).timestamp())
    results = []
    for tag, counts in FINDINGS.items():
        if counts is None:
            continue
        ecr.start_image_scan(repositoryName=REPOSITORY, imageId={"imageDigest": digests[tag]})
        results.append(_scan_result(digests[tag], counts))
    httpx.post(
        f"{moto_url}/moto-api/static/ecr/scan-finding-results",
        json={"results": results, "region": REGION},
        timeout=10,
    ).raise_for_status()

    revisions = {}
    for cluster, desired in (("prod", 3), ("staging", 2)):
        ecs.create_cluster(clusterName=cluster)
        revision = ecs.register_task_definition(
            **task_definition(f"api-{cluster}", f"{uri}@{digests['1.0.0']}")
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=cluster,
            serviceName="api",
            taskDefinition=revision,
            desiredCount=desired,
            launchType="FARGATE",
            networkConfiguration=network,
        )
        rollouts.complete(cluster)  # a service that has been running for a while
        revisions[cluster] = revision
    return World(
        aws=aws,
        rollouts=rollouts,
        repository_uri=uri,
        digests=digests,
        task_definitions=revisions,
    )
