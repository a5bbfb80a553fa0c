"""A rollout's stopped tasks and ECS's reasons, read the way ECS's ListTasks allows.

ECS's ListTasks lists only tasks whose desired status is RUNNING unless asked
for STOPPED ones, takes startedBy (where ECS names a service task's deployment)
only as its one filter, and answers in pages of 100; DescribeTasks takes at most
100 tasks. `world.rollouts` (sandbox/ecs_rollouts.py) makes moto answer the same,
so a client that asks otherwise meets here what it meets on ECS.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from bot.adapters import ecs
from tests.deploys.world import World


def failed_rollout(world: World, reasons: list[str]) -> str:
    """A new rollout in staging whose tasks stop for `reasons` (the circuit breaker); its id."""
    world.aws("ecs").update_service(cluster="staging", service="api", forceNewDeployment=True)
    deployment_id = str(world.rollouts.primary("staging")["id"])
    world.rollouts.fail("staging", reasons=reasons)
    return deployment_id


def refusal(call: ClientError) -> str:
    return str(call.response["Error"]["Code"])


def test_the_world_lists_tasks_as_ecs_does(world: World) -> None:
    crashed = failed_rollout(world, ["Essential container in task exited"])
    client = world.aws("ecs")

    # Without desiredStatus, only tasks ECS wants running: none of a crashed rollout's.
    assert client.list_tasks(cluster="staging", startedBy=crashed)["taskArns"] == []
    with pytest.raises(ClientError) as beside_another:
        client.list_tasks(cluster="staging", startedBy=crashed, desiredStatus="STOPPED")
    assert refusal(beside_another.value) == "InvalidParameterException"
    [stopped] = client.list_tasks(cluster="staging", serviceName="api", desiredStatus="STOPPED")[
        "taskArns"
    ]
    assert (
        client.list_tasks(cluster="staging", serviceName="web", desiredStatus="STOPPED")["taskArns"]
        == []
    )
    with pytest.raises(ClientError) as too_many:
        client.describe_tasks(cluster="staging", tasks=[stopped] * 101)
    assert refusal(too_many.value) == "InvalidParameterException"


def test_a_rollouts_stopped_tasks_come_with_their_reasons_across_pages(world: World) -> None:
    pulls = [f"CannotPullContainerError: pull attempt {n} failed" for n in range(103)]
    first = failed_rollout(world, pulls)
    second = failed_rollout(world, ["Essential container in task exited"])
    client = world.aws("ecs")

    # 104 stopped tasks of the service: two ListTasks pages, two DescribeTasks calls.
    page = client.list_tasks(cluster="staging", serviceName="api", desiredStatus="STOPPED")
    assert len(page["taskArns"]) == 100 and page["nextToken"]
    found = ecs.stopped_tasks(client, cluster="staging", service="api", started_by=first)
    assert sorted(t.reason for t in found) == sorted(pulls)
    [crashed] = ecs.stopped_tasks(client, cluster="staging", service="api", started_by=second)
    assert crashed.reason == "Essential container in task exited"
    assert crashed.arn not in {t.arn for t in found}
    # Without the service, the cluster's stopped tasks are sifted the same way.
    assert len(ecs.stopped_tasks(client, cluster="staging", started_by=first)) == 103
    assert ecs.stopped_tasks(client, cluster="prod", service="api", started_by=first) == []
