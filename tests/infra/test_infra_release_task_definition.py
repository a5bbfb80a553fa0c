"""infra/release_task_definition.py against ECS in moto server mode.

Terraform registers revisions with the settings (the pinned config version among them);
`opsbot deploy` registers copies of the running revision with new images. The release
script must carry Terraform's settings onto the service with the image that runs, once,
and every later image deploy must keep them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.adapters import ecs

IMAGE_V1 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/opsbot@sha256:" + "1" * 64
IMAGE_V2 = "123456789012.dkr.ecr.us-east-1.amazonaws.com/opsbot@sha256:" + "2" * 64


def terraform_revision(client: Any, family: str, *, config_version: str) -> str:
    """What Terraform registers: the settings, and the image tag of the first deployment."""
    answer = client.register_task_definition(
        family=family,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="512",
        memory="1024",
        containerDefinitions=[
            {
                "name": "opsbot",
                "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/opsbot:first",
                "essential": True,
                "environment": [
                    {"name": "OPSBOT_CONFIG_PARAMETER", "value": f"/{family}/config"},
                    {"name": "OPSBOT_CONFIG_VERSION", "value": config_version},
                ],
            }
        ],
        tags=[{"key": "environment", "value": "test"}],
    )
    return str(answer["taskDefinition"]["taskDefinitionArn"])


def opsbot_deploy(client: Any, cluster: str, service: str, image: str) -> str:
    """What `opsbot deploy` does to the service: a copy of the running revision, new image."""
    state = ecs.describe_service(client, cluster=cluster, service=service)
    running = ecs.describe_task_definition(client, arn=state.task_definition)
    registered = ecs.register_with_image(client, running, container="opsbot", image=image)
    ecs.update_service(client, cluster=cluster, service=service, task_definition=registered.arn)
    return registered.arn


def running(client: Any, cluster: str, service: str) -> ecs.TaskDefinition:
    state = ecs.describe_service(client, cluster=cluster, service=service)
    return ecs.describe_task_definition(client, arn=state.task_definition)


def environment(task_definition: ecs.TaskDefinition) -> dict[str, str]:
    container = task_definition.body["containerDefinitions"][0]
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def run_release(
    repo: Path, moto_server: str, cluster: str, service: str, revision: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    return subprocess.run(
        [
            sys.executable,
            str(repo / "infra" / "release_task_definition.py"),
            "--cluster",
            cluster,
            "--service",
            service,
            "--terraform-revision",
            revision,
        ],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def service(aws: Callable[[str], Any]) -> tuple[Any, str, str, str]:
    """A cluster and a service created from Terraform's first revision, then deployed to."""
    client = aws("ecs")
    name = f"opsbot-{uuid.uuid4().hex[:8]}"
    client.create_cluster(clusterName=name)
    first = terraform_revision(client, name, config_version="1")
    client.create_service(cluster=name, serviceName=name, taskDefinition=first, desiredCount=1)
    opsbot_deploy(client, name, name, IMAGE_V1)
    return client, name, name, first


def test_a_new_terraform_revision_reaches_the_service_with_the_running_image(
    infra_repo: Path, moto_server: str, service: tuple[Any, str, str, str]
) -> None:
    client, cluster, name, _ = service
    second = terraform_revision(client, name, config_version="2")

    result = run_release(infra_repo, moto_server, cluster, name, second)

    assert result.returncode == 0, result.stdout + result.stderr
    now = running(client, cluster, name)
    assert now.image_of("opsbot") == IMAGE_V1, "the release must not change the image"
    assert environment(now)["OPSBOT_CONFIG_VERSION"] == "2"
    assert {"key": "opsbot:terraform-revision", "value": second} in [dict(t) for t in now.tags]
    assert {"key": "environment", "value": "test"} in [dict(t) for t in now.tags]
    assert "config 1 -> 2" in result.stdout


def test_a_released_revision_is_not_released_again_and_image_deploys_keep_it(
    infra_repo: Path, moto_server: str, service: tuple[Any, str, str, str]
) -> None:
    client, cluster, name, _ = service
    second = terraform_revision(client, name, config_version="2")
    assert run_release(infra_repo, moto_server, cluster, name, second).returncode == 0
    released = running(client, cluster, name).arn

    again = run_release(infra_repo, moto_server, cluster, name, second)
    assert again.returncode == 0 and "nothing to release" in again.stdout
    assert running(client, cluster, name).arn == released

    opsbot_deploy(client, cluster, name, IMAGE_V2)
    after_deploy = run_release(infra_repo, moto_server, cluster, name, second)
    assert after_deploy.returncode == 0 and "nothing to release" in after_deploy.stdout
    now = running(client, cluster, name)
    assert now.image_of("opsbot") == IMAGE_V2
    assert environment(now)["OPSBOT_CONFIG_VERSION"] == "2"


def test_the_revision_the_service_was_created_from_needs_no_release(
    infra_repo: Path, moto_server: str, aws: Callable[[str], Any]
) -> None:
    client = aws("ecs")
    name = f"opsbot-{uuid.uuid4().hex[:8]}"
    client.create_cluster(clusterName=name)
    first = terraform_revision(client, name, config_version="1")
    client.create_service(cluster=name, serviceName=name, taskDefinition=first, desiredCount=1)

    result = run_release(infra_repo, moto_server, name, name, first)

    assert result.returncode == 0 and "nothing to release" in result.stdout
    assert running(client, name, name).arn == first


def test_an_unknown_service_fails_and_registers_nothing(
    infra_repo: Path, moto_server: str, service: tuple[Any, str, str, str]
) -> None:
    client, cluster, name, _ = service
    second = terraform_revision(client, name, config_version="2")
    before = client.list_task_definitions(familyPrefix=name)["taskDefinitionArns"]

    result = run_release(infra_repo, moto_server, cluster, "no-such-service", second)

    assert result.returncode == 1
    assert "no-such-service" in result.stdout
    assert client.list_task_definitions(familyPrefix=name)["taskDefinitionArns"] == before
