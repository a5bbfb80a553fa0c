"""infra/run_in_service.py against ECS in moto server mode.

The deploy workflow runs `opsbot deploy` through it, so the command runs where the bot
runs (its database, secrets and network), not on the CI runner. The script must start a
task of the service's running revision in the service's network, with the command and
the caller's identity, and exit with the command's exit code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.ecs.models import ecs_backends

from sandbox.ecs_rollouts import EcsRollouts
from sandbox.server import HttpRequest, HttpResponse, LoopbackServer
from tests.support import wait_for


@pytest.fixture
def network(aws: Callable[[str], Any]) -> dict[str, Any]:
    """A private subnet and security group, as the service runs in."""
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=uuid.uuid4().hex, Description="bot", VpcId=vpc)
    return {
        "awsvpcConfiguration": {
            "subnets": [subnet],
            "securityGroups": [group["GroupId"]],
            "assignPublicIp": "DISABLED",
        }
    }


@pytest.fixture
def service(aws: Callable[[str], Any], network: dict[str, Any]) -> Iterator[tuple[Any, str]]:
    # The sandbox's ECS scheduler makes moto's RunTask work for awsvpc tasks.
    rollouts = EcsRollouts(aws=aws, network=network).install()
    client = aws("ecs")
    name = f"opsbot-{uuid.uuid4().hex[:8]}"
    client.create_cluster(clusterName=name)
    revision = client.register_task_definition(
        family=name,
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="512",
        memory="1024",
        containerDefinitions=[
            {"name": "opsbot", "image": "opsbot:v1", "cpu": 256, "memory": 512, "essential": True}
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    client.create_service(
        cluster=name,
        serviceName=name,
        taskDefinition=revision,
        desiredCount=1,
        launchType="FARGATE",
        networkConfiguration=network,
    )
    yield client, name
    rollouts.uninstall()


@pytest.fixture
def run(infra_repo: Path, moto_server: str) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def launch(*args: str, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("ACTIONS_ID_TOKEN")},
            **(extra or {}),
            "AWS_ENDPOINT_URL": moto_server,
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        process = subprocess.Popen(
            [sys.executable, str(infra_repo / "infra" / "run_in_service.py"), *args],
            env=env,
            cwd=infra_repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        return process

    yield launch
    for process in started:
        process.kill()
        process.wait()


def one_off_task(client: Any, cluster: str) -> dict[str, Any]:
    def started() -> dict[str, Any] | None:
        arns = client.list_tasks(cluster=cluster, startedBy="opsbot-run-in-service")["taskArns"]
        if not arns:
            return None
        return dict(client.describe_tasks(cluster=cluster, tasks=arns)["tasks"][0])

    task = wait_for(started, timeout_s=60)
    assert task is not None
    return task


def finish(cluster: str, task_arn: str, exit_code: int) -> None:
    """What ECS does when the container exits: its code, then the task stops."""
    [backend] = [ecs_backends[account]["us-east-1"] for account in ecs_backends]
    task = backend.tasks[cluster][task_arn]
    task.containers[0].exitCode = exit_code
    backend.stop_task(cluster, task_arn, "Essential container in task exited")


@pytest.fixture
def runner() -> Iterator[tuple[LoopbackServer, list[HttpRequest]]]:
    """The runner's token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL) of a job with id-token: write."""
    asked: list[HttpRequest] = []

    def handle(request: HttpRequest) -> HttpResponse:
        asked.append(request)
        if request.headers.get("authorization") != "bearer runner-secret":
            return HttpResponse(401)
        return HttpResponse.json({"value": f"signed-for-{request.query['audience'][0]}"})

    server = LoopbackServer(handle).start()
    yield server, asked
    server.stop()


@pytest.mark.parametrize("exit_code", [0, 3])
def test_the_command_runs_in_the_service_network_as_the_job_and_its_exit_code_is_the_scripts(
    service: tuple[Any, str],
    network: dict[str, Any],
    run: Callable[..., subprocess.Popen[str]],
    runner: tuple[LoopbackServer, list[HttpRequest]],
    exit_code: int,
) -> None:
    client, name = service
    command = ["opsbot", "deploy", "opsbot", "prod", "v1.4.2"]
    server, asked = runner

    process = run(
        "--cluster", name, "--service", name, "--poll-s", "0.2", "--", *command,
        extra={
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{server.url}/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "runner-secret",
            "GITHUB_ACTOR": "octocat",
        },
    )  # fmt: skip
    task = one_off_task(client, name)
    [override] = task["overrides"]["containerOverrides"]
    assert override["name"] == "opsbot"
    assert override["command"] == command
    # The identity is the token the runner minted for opsbot's audience, nothing the
    # workflow names: no GITHUB_ACTOR goes to the task.
    assert override["environment"] == [
        {"name": "OPSBOT_GITHUB_OIDC_TOKEN", "value": "signed-for-opsbot"}
    ]
    [request] = asked
    assert request.query == {"api-version": ["2.0"], "audience": ["opsbot"]}
    assert (
        task["taskDefinitionArn"]
        == client.describe_services(cluster=name, services=[name])["services"][0]["taskDefinition"]
    )
    finish(name, task["taskArn"], exit_code)

    output, _ = process.communicate(timeout=60)
    assert process.returncode == exit_code, output
    assert "STOPPED" in output


def test_an_unknown_service_starts_nothing_and_fails(
    service: tuple[Any, str], run: Callable[..., subprocess.Popen[str]]
) -> None:
    client, name = service

    process = run("--cluster", name, "--service", "no-such-service", "--", "opsbot", "version")
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 1
    assert "no-such-service" in output
    assert client.list_tasks(cluster=name)["taskArns"] == []


def test_outside_a_job_allowed_id_tokens_the_command_has_no_identity(
    service: tuple[Any, str], run: Callable[..., subprocess.Popen[str]]
) -> None:
    client, name = service
    process = run(
        "--cluster", name, "--service", name, "--poll-s", "0.2", "--", "opsbot", "version",
        extra={"GITHUB_ACTOR": "octocat"},
    )  # fmt: skip
    task = one_off_task(client, name)
    [override] = task["overrides"]["containerOverrides"]
    assert override.get("environment", []) == []
    finish(name, task["taskArn"], 0)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "no GitHub OIDC token" in output
