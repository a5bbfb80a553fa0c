"""A small AWS world on moto server for the deploy tests, and the ECS behaviour moto lacks.

Seeded through the AWS APIs (boto3 against the moto server): a VPC, an ECR
repository with images pushed from real manifests (so digests exist) and
their scans, two ECS clusters with a Fargate task definition and service each.

moto never runs an ECS rollout: `world.rollouts` (sandbox/ecs_rollouts.py) plays
ECS's deployment scheduler on moto's own backend state, openly: UpdateService
starts a new PRIMARY deployment; `progress`, `complete` and `fail` move it as
ECS would (`fail` stops real moto tasks with ECS's reasons and starts the
circuit breaker's rollback deployment). The bot sees all of it only through
DescribeServices, ListTasks and DescribeTasks.

moto 5 also stamps ECR pushes with the wall clock to the second: the seed
spaces them a minute apart (on moto's image records) so "most recent" is
defined.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from moto.ecr.models import ecr_backends

from sandbox.ecs_rollouts import ACCOUNT, REGION, EcsRollouts

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


def build_world(moto_url: str, aws: Callable[[str], Any], rollouts: EcsRollouts) -> World:
    """Reset moto and seed it; `rollouts` (installed) plays ECS's part."""
    # A loaded run (four workers on two cores) can keep moto's answer to a reset past
    # 10 s: two fixtures timed out there in a clean-clone run.
    httpx.post(f"{moto_url}/moto-api/reset", timeout=60).raise_for_status()
    ec2, ecr, ecs = aws("ec2"), aws("ecr"), aws("ecs")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="api", Description="api tasks", VpcId=vpc)[
        "GroupId"
    ]
    network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}
    rollouts.network = network

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
